"""Data-set measures with no model to tune: ``tamis score diversity`` (Remote Clique, Chamfer) and ``tamis
score agreement`` (Krippendorff's alpha, per-item agreement)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tamis.cli.app import (CalibrateOpt, DryRunOpt, EngineOptions, FormatOpt, OverwriteOpt, PlanJsonOpt, WorkspaceOpt,
                           check_plan_flags, friendly_errors, out, score_app, show_plan, workspace_from)
from tamis.cli.synthetic import EmbedderOpt
from tamis.engine.base import EngineConfig


@score_app.command("diversity")
@friendly_errors
def score_diversity(
    data: Path = typer.Argument(..., help="Data set (labelled texts or chat rows)."),
    format: Optional[str] = FormatOpt,
    embedder: str = EmbedderOpt,
    by_label: bool = typer.Option(False, help="Also score each label's texts separately."),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/"
                                          "diversity-NAME]."),
    engine: EngineConfig = EngineOptions,
    overwrite: bool = OverwriteOpt,
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Remote Clique and Chamfer diversity (cosine, j != i) and each item's contribution (signals.parquet)."""
    from tamis.models import load_embedder
    from tamis.pipeline.clear import read_input
    from tamis.pipeline.profile import embedding_text
    from tamis.runs import Run
    from tamis.signals.diversity import diversity, diversity_table

    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan import plan_embed

        return show_plan(lambda ws: plan_embed("score diversity", str(data), format, embedder, ws), workspace,
                         as_json, calibrate)
    ws = workspace_from(workspace)
    folder = output or ws.run_dir(f"diversity-{data.stem}")
    settings = {"data": str(data), "format": format, "embedder": embedder, "by_label": by_label}
    with Run("score diversity", settings, folder, inputs=[data], overwrite=overwrite) as run:
        examples = read_input(str(data), format, folder, None, run.manifest).examples
        texts = [embedding_text(ex) for ex in examples]
        if engine.engine == "local":
            emb = load_embedder(embedder, ws)
            run.manifest.model("embedder", emb.identity)
            vectors = emb.embed(texts)
        else:
            from tamis.pipeline.profile import ProfileConfig, engine_embeddings

            vectors, identity = engine_embeddings(texts, ProfileConfig(data=str(data), embedder=embedder,
                                                                       engine=engine), run)
            run.manifest.model("embedder", identity)
        groups = {"all": list(range(len(examples)))}
        if by_label:
            for i, ex in enumerate(examples):
                groups.setdefault(f"label={ex.label}", []).append(i)
        table = Table(title=f"Diversity of {data.name}")
        for col in ("set", "n", "Remote Clique", "Chamfer"):
            table.add_column(col, justify="right")
        summaries, items = {}, None
        for name, idx in groups.items():
            d = diversity(vectors[idx], nearest=_nearest_on(engine, vectors[idx], run, name))
            summaries[name] = d.summary()
            table.add_row(name, str(d.n), f"{d.remote_clique:.4f}", f"{d.chamfer:.4f}")
            if name == "all":
                items = diversity_table([examples[i].id for i in idx], d)
        out.print(table)
        run.manifest.output("signals", items.write(folder))
        run.manifest.data["scores"] = summaries
        run.finish()
    lowest = sorted(items.rows(), key=lambda r: r["chamfer"])[:5]
    out.print("most redundant (smallest Chamfer): " + ", ".join(f"{r['id']}~{r['nearest_id']}" for r in lowest))
    out.print(f"outputs in [bold]{folder}[/] (signals.parquet, manifest.json)")


def _check_level(value: str) -> str:
    from tamis.errors import unknown

    levels = ("nominal", "ordinal", "interval", "ratio")
    if value not in levels:
        raise typer.BadParameter(unknown("level", value, levels))
    return value


@score_app.command("agreement")
@friendly_errors
def score_agreement(
    ratings: Path = typer.Argument(..., help="Long-format ratings: TSV/CSV with item, annotator, label (or JSONL)."),
    level: str = typer.Option("nominal", help="nominal, ordinal, interval or ratio.", callback=_check_level),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/"
                                          "agreement-NAME]."),
    overwrite: bool = OverwriteOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Instance agreement a_i (signals.parquet), Krippendorff's alpha and a subjectivity summary."""
    from tamis.runs import Run
    from tamis.signals.agreement import instance_agreement, read_ratings, subjectivity_summary

    ws = workspace_from(workspace)
    folder = output or ws.run_dir(f"agreement-{ratings.stem}")
    with Run("score agreement", {"ratings": str(ratings), "level": level}, folder, inputs=[ratings],
             overwrite=overwrite) as run:
        rows = read_ratings(ratings)
        summary = subjectivity_summary(rows, level)  # type: ignore[arg-type]
        for key, value in summary.items():
            if key != "labels":
                out.print(f"[bold]{key}[/]: {value:.4f}" if isinstance(value, float) else f"[bold]{key}[/]: {value}")
        run.manifest.output("signals", instance_agreement(rows).write(folder))
        run.manifest.data["summary"] = summary
        run.finish()
    out.print(f"outputs in [bold]{folder}[/] (signals.parquet, manifest.json)")


def _nearest_on(engine: EngineConfig, vectors, run, group: str):
    """The exact nearest-other search of one group on the engine's workers (None: in this process)."""
    if engine.engine == "local" or len(vectors) < 2:
        return None
    from tamis.engine import ShardStore
    from tamis.engine.base import stage_shards
    from tamis.signals.diversity import nearest_other_on_engine

    slug = "nearest-" + "".join(c if c.isalnum() else "-" for c in group)
    nearest, stats = nearest_other_on_engine(vectors, engine, ShardStore(stage_shards(engine, run.out, slug)))
    run.manifest.count(**stats.counts(slug.replace("-", "_")))
    return nearest
