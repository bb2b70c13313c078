"""The post-editing studio: people correct machine-generated data; tamis keeps every version and measures it.

    app = create_app("sqlite:///tamis-workspace/studio/studio.db")   # served by `tamis studio serve`
    result = export_project(database, "dialogues", "out/")           # `tamis studio export`
"""

from tamis.studio.app import create_app
from tamis.studio.db import Database
from tamis.studio.export import export_project

__all__ = ["Database", "create_app", "export_project"]
