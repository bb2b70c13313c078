"""Every studio operation, importable from one place (``from tamis.studio import work``; the CLI, the pages,
the export and the tests use it). Each lives in the module for its job; every function commits or raises,
so an HTTP response (or a CLI message) is only produced after the data is durable:

- ``accounts``: users, passwords, deactivation;
- ``projects``: names, criteria and scales, creation (all or nothing), members, team progress, deletion;
- ``annotation``: claiming items, saving versions (limits, server-measured time), skip/flag, own progress;
- ``reviewing``: comment threads, what reviewers see, their decisions;
- ``errors``: ``Conflict``, ``Invalid``, ``TooMuch``.

Limits (``SAVES_PER_MINUTE`` ...) are read from their module: patch ``annotation.SAVES_PER_MINUTE``, not this one.
"""

from __future__ import annotations

from tamis.studio.accounts import add_user, find_user, reset_password, set_active
from tamis.studio.annotation import (REPLACED_HTER, SAVE_CHARS_PER_HOUR, SAVE_MAX_CHARS, SAVES_PER_MINUTE, TIME_CAP_S,
                                     Edit, ListedItem, check_save_budget, close_assignment, has_suggestion,
                                     latest_version, my_items, neighbours, progress, progress_and_neighbours,
                                     save_version, starting_messages, suggestion_outcome, time_on_item)
from tamis.studio.claims import (CLAIM_RETRIES, annotator_count, effective_overlap, next_assignment, reopen)
from tamis.studio.errors import Conflict, Invalid, TooMuch
from tamis.studio.projects import (DEFAULT_CRITERIA, GUIDELINES_MAX_CHARS, MAX_OVERLAP, PROJECT_NAME_MAX,
                                   MemberProgress, add_member, create_project, delete_project, describe_scales,
                                   parse_criteria, parse_scale_descriptions, remove_member, slugify, team_progress,
                                   validate_project_name)
from tamis.studio.reviewing import (COMMENT_MAX_CHARS, COMMENTS_PER_MINUTE, accept, add_comment, can_discuss, comments,
                                    disagreement, flags, latest_review, review, review_reasons, submitted_edits)

__all__ = [
    "COMMENTS_PER_MINUTE", "COMMENT_MAX_CHARS", "CLAIM_RETRIES", "DEFAULT_CRITERIA", "GUIDELINES_MAX_CHARS",
    "MAX_OVERLAP", "PROJECT_NAME_MAX", "REPLACED_HTER", "SAVES_PER_MINUTE", "SAVE_CHARS_PER_HOUR", "SAVE_MAX_CHARS",
    "TIME_CAP_S", "Conflict", "Edit", "Invalid", "ListedItem", "MemberProgress", "TooMuch", "accept", "add_comment",
    "add_member", "add_user", "annotator_count", "can_discuss", "check_save_budget", "close_assignment", "comments",
    "create_project", "delete_project", "describe_scales", "disagreement", "effective_overlap", "find_user", "flags",
    "has_suggestion", "latest_review", "latest_version", "my_items", "neighbours", "next_assignment",
    "parse_criteria", "parse_scale_descriptions", "progress", "progress_and_neighbours", "remove_member", "reopen", "reset_password", "review",
    "review_reasons", "save_version", "set_active", "slugify", "starting_messages", "submitted_edits",
    "suggestion_outcome", "team_progress", "time_on_item", "validate_project_name",
]
