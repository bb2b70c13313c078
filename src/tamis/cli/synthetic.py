"""Synthetic data commands: ``tamis generate ...``, ``tamis experiment synthetic`` (the measures of a data
set's diversity and agreement are in ``measures.py``)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tamis.cli.app import (CalibrateOpt, _check_model_spec, DryRunOpt, EngineOptions, FormatOpt, OverwriteOpt,
                           PlanJsonOpt, WorkspaceOpt, app, check_plan_flags, experiment_app, friendly_errors, opt,
                           out, show_plan, workspace_from)
from tamis.engine.base import EngineConfig
from tamis.generate.conversations import DialogueConfig, InstructionConfig
from tamis.generate.labelled import LabelledGenerationConfig
from tamis.generate.nearcopy import NearCopyConfig

generate_app = typer.Typer(help="Generate synthetic data: labelled texts, instructions, dialogues.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")

ModelOpt = typer.Option("llamacpp:smollm2", "--model", "-m", help="Generator LLM spec.", callback=_check_model_spec)
EmbedderOpt = typer.Option("sentence-transformers:minilm", "--embedder", "-e", help="Embedder spec.",
                           callback=_check_model_spec)


def _generation_run(command: str, settings: dict, out_dir: Path, inputs: list, overwrite: bool):
    """The run folder of a generation command (settings saved, other settings refused, reuse when done)."""
    from tamis.runs import Run

    return Run(command, settings, out_dir, inputs=[p for p in inputs if p], overwrite=overwrite)


def _reused(run) -> bool:
    if run.complete:
        out.print(f"reused: {run.out} already holds this run ({run.stored_manifest()['counts']})")
    return run.complete


def _generator(model: str, ws, run, engine):
    """The generator: in this process through the call cache, or on the engine (shards in the run folder)."""
    from tamis.engine.llm import stage_llm

    return stage_llm(model, ws, engine, engine.shards or run.out / "shards")


def _write_generation(result, run, llm) -> None:
    """A generation run folder: generated.jsonl, rejected.jsonl (decisions with reasons), manifest.json."""
    from tamis.curate.decisions import write_decisions
    from tamis.engine.llm import record_engine
    from tamis.errors import DataError
    from tamis.io import write_dataset

    record_engine(run.manifest, llm)

    out_path, rejected = run.out / "generated.jsonl", run.out / "rejected.jsonl"
    kind = result.examples[0].kind if result.examples else "labelled"
    write_dataset(result.examples, out_path, format="labelled" if kind == "labelled" else "messages")
    write_decisions(result.rejected, rejected)
    run.manifest.count(**{k: v for k, v in result.counts.items()})
    run.manifest.output("data", out_path)
    run.manifest.output("rejected", rejected)
    if not result.examples:
        raise DataError(f"no usable example was generated ({len(result.rejected)} rejected; reasons in {rejected})")
    run.finish()
    out.print(result.summary())
    out.print(f"wrote [bold]{out_path}[/] ({len(result.examples)} rows), rejections with reasons in {rejected}")


def _topics(topics: list[str], topics_file: Optional[Path]) -> list[str]:
    from tamis.io import DataError

    found = list(topics)
    if topics_file:
        found += [line.strip() for line in topics_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not found:
        raise DataError("no seed topics: pass --topic (repeatable) or --topics FILE (one topic per line)")
    return found


@generate_app.command("tasks")
@friendly_errors
def tasks() -> None:
    """List the bundled task configurations."""
    from tamis.generate import bundled_tasks, load_task

    for name in bundled_tasks():
        task = load_task(name)
        out.print(f"[bold]{name}[/]: {task.text_kind}; labels {', '.join(task.labels)}")


@generate_app.command("labelled")
@friendly_errors
def labelled(
    task: str = typer.Option(..., "--task", "-t", help="Bundled task name or a task YAML file."),
    mode: str = opt(LabelledGenerationConfig, "mode"),
    n_per_label: int = opt(LabelledGenerationConfig, "n_per_label"),
    examples: Optional[Path] = typer.Option(None, help="Real labelled data: few-shot examples and near-copy references."),
    format: Optional[str] = FormatOpt,
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace run folder]."),
    model: str = ModelOpt,
    embedder: str = EmbedderOpt,
    temperature: float = opt(LabelledGenerationConfig, "temperature"),
    reasoning: str = opt(LabelledGenerationConfig, "reasoning"),
    seed: int = opt(LabelledGenerationConfig, "seed"),
    embedding_threshold: Optional[float] = opt(NearCopyConfig, "embedding_threshold"),
    rouge_threshold: Optional[float] = opt(NearCopyConfig, "rouge_threshold"),
    engine: EngineConfig = EngineOptions,
    overwrite: bool = OverwriteOpt,
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Generate labelled texts zero- or few-shot; near-copies and unusable replies are rejected and counted."""
    from tamis.generate import generate_labelled, load_task
    from tamis.io import read_dataset
    from tamis.models import load_embedder

    ws = workspace_from(workspace)
    cfg = load_task(task)
    pool = read_dataset(examples, format=format, columns=cfg.data.columns or None).examples if examples else []
    for ex in pool:
        ex.label = cfg.data.label_map.get(str(ex.label), str(ex.label))
    near = NearCopyConfig(embedding_threshold=None if embedding_threshold is not None and embedding_threshold < 0
                          else embedding_threshold,
                          rouge_threshold=None if rouge_threshold is not None and rouge_threshold < 0 else rouge_threshold)
    gen = LabelledGenerationConfig(n_per_label=n_per_label, mode=mode, temperature=temperature, seed=seed,  # type: ignore[arg-type]
                                   near_copy=near, reasoning=reasoning)
    settings = {"task": cfg.to_dict(), "generation": asdict(gen), "model": model, "embedder": embedder,
                "examples": str(examples) if examples else None}
    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan import plan_generation

        note = (f"calls assume every reply is usable; rejected replies are retried, up to "
                f"{max(1, int(gen.n_per_label * gen.max_attempts_factor)) * len(cfg.labels)} generations in all")
        return show_plan(lambda ws: plan_generation(
            "generate labelled", lambda llm, emb: generate_labelled(cfg, llm, gen, pool=pool, embedder=emb), model, ws,
            embedder if near.embedding_threshold is not None else None, note), workspace, as_json, calibrate)
    with _generation_run("generate labelled", settings, output or ws.run_dir(f"generate-{cfg.name}-{mode}"),
                         [examples], overwrite) as run:
        if _reused(run):
            return
        llm = _generator(model, ws, run, engine)
        emb = load_embedder(embedder, ws) if near.embedding_threshold is not None else None
        run.manifest.model("generator", llm.identity)
        if emb is not None:
            run.manifest.model("embedder", emb.identity)
        with run.manifest.stage("generate"):
            result = generate_labelled(cfg, llm, gen, pool=pool, embedder=emb)
        _write_generation(result, run, llm)


@generate_app.command("instructions")
@friendly_errors
def instructions(
    topic: list[str] = typer.Option([], "--topic", help="A seed topic (repeatable)."),
    topics: Optional[Path] = typer.Option(None, "--topics", help="File with one seed topic per line."),
    n_per_topic: int = opt(InstructionConfig, "n_per_topic"),
    temperature: float = opt(InstructionConfig, "temperature"),
    max_tokens: int = opt(InstructionConfig, "max_tokens"),
    rouge_threshold: float = opt(InstructionConfig, "rouge_threshold"),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace run folder]."),
    model: str = ModelOpt,
    seed: int = opt(InstructionConfig, "seed"),
    engine: EngineConfig = EngineOptions,
    overwrite: bool = OverwriteOpt,
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Instruction-response pairs (chat rows) from seed topics."""
    from tamis.generate import generate_instructions
    ws = workspace_from(workspace)
    found = _topics(topic, topics)
    cfg = InstructionConfig(n_per_topic=n_per_topic, temperature=temperature, max_tokens=max_tokens,
                            rouge_threshold=rouge_threshold, seed=seed)
    settings = {"topics": found, "model": model} | asdict(cfg)
    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan import plan_generation

        return show_plan(lambda ws: plan_generation(
            "generate instructions", lambda llm, emb: generate_instructions(found, llm, cfg), model, ws,
            note="response calls assume every instruction is usable (rejected ones get no response)"),
            workspace, as_json, calibrate)
    with _generation_run("generate instructions", settings, output or ws.run_dir("generate-instructions"), [],
                         overwrite) as run:
        if _reused(run):
            return
        llm = _generator(model, ws, run, engine)
        run.manifest.model("generator", llm.identity)
        _write_generation(generate_instructions(found, llm, cfg), run, llm)


@generate_app.command("dialogues")
@friendly_errors
def dialogues(
    topic: list[str] = typer.Option([], "--topic", help="A seed topic (repeatable)."),
    topics: Optional[Path] = typer.Option(None, "--topics", help="File with one seed topic per line."),
    n_per_topic: int = opt(DialogueConfig, "n_per_topic"),
    turns: int = opt(DialogueConfig, "n_turns", "--turns"),
    temperature: float = opt(DialogueConfig, "temperature"),
    max_tokens: int = opt(DialogueConfig, "max_tokens"),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace run folder]."),
    model: str = ModelOpt,
    seed: int = opt(DialogueConfig, "seed"),
    engine: EngineConfig = EngineOptions,
    overwrite: bool = OverwriteOpt,
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Multi-turn dialogues (chat rows) from seed topics, for post-editing."""
    from tamis.generate import generate_dialogues
    ws = workspace_from(workspace)
    found = _topics(topic, topics)
    cfg = DialogueConfig(n_per_topic=n_per_topic, n_turns=turns, temperature=temperature, max_tokens=max_tokens,
                         seed=seed)
    settings = {"topics": found, "model": model} | asdict(cfg)
    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan import plan_generation

        return show_plan(lambda ws: plan_generation(
            "generate dialogues", lambda llm, emb: generate_dialogues(found, llm, cfg), model, ws),
            workspace, as_json, calibrate)
    with _generation_run("generate dialogues", settings, output or ws.run_dir("generate-dialogues"), [],
                         overwrite) as run:
        if _reused(run):
            return
        llm = _generator(model, ws, run, engine)
        run.manifest.model("generator", llm.identity)
        result = generate_dialogues(found, llm, cfg)
        _write_generation(result, run, llm)


@experiment_app.command("synthetic")
@friendly_errors
def experiment_synthetic(
    task: str = typer.Option("sms_spam", "--task", "-t", help="Bundled task name or task YAML."),
    data: Optional[Path] = typer.Option(None, help="Labelled data [default: the task's file under --data-root]."),
    data_root: Optional[Path] = typer.Option(None, envvar="TAMIS_DATA_ROOT", help="Folder of real data sets [default: ../shared/data]."),
    n_per_label: int = typer.Option(40, help="Training texts per label in every set."),
    test_size: int = typer.Option(400, help="Real test texts (stratified sample)."),
    seeds: str = typer.Option("0,1,2", help="Classifier seeds, comma-separated."),
    generator: str = ModelOpt,
    embedder: str = EmbedderOpt,
    classifier: str = typer.Option("minilm", help="Encoder: 'minilm' (bundled) or any Hugging Face encoder path/id."),
    epochs: float = typer.Option(5.0),
    max_steps: Optional[int] = typer.Option(None, help="Cap classifier steps (quick runs)."),
    reasoning: str = opt(LabelledGenerationConfig, "reasoning"),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder [default: workspace/runs/synthetic-TASK]."),
    dry_run: bool = DryRunOpt,
    as_json: bool = PlanJsonOpt,
    calibrate: bool = CalibrateOpt,
    workspace: Optional[str] = WorkspaceOpt,
) -> None:
    """Real vs zero-shot vs few-shot training data: macro-F1/accuracy, diversity, agreement curves."""
    from tamis.pipeline.synthetic import SyntheticStudyConfig, run_synthetic_study
    from tamis.train.classifier import ClassifierConfig

    config = SyntheticStudyConfig(
        task=task, data=str(data) if data else None, data_root=str(data_root) if data_root else None,
        out=str(output) if output else None, n_per_label=n_per_label, test_size=test_size,
        seeds=tuple(int(s) for s in seeds.split(",") if s.strip()), generator=generator, embedder=embedder,
        reasoning=reasoning, classifier=ClassifierConfig(model=classifier, epochs=epochs, max_steps=max_steps, max_length=64))
    check_plan_flags(dry_run, as_json, calibrate)
    if dry_run:
        from tamis.plan import plan_synthetic

        return show_plan(lambda ws: plan_synthetic(config, ws), workspace, as_json, calibrate)
    print_synthetic_result(run_synthetic_study(config, workspace_from(workspace)), config)


def print_synthetic_result(result, config) -> None:
    """The synthetic study's table (mean ± sd over seeds), agreement fits and where its outputs are."""
    table = Table(title=f"{config.task}: macro-F1 / accuracy over {len(config.seeds)} seed(s)")
    for col in ("set", "n", "macro-F1", "accuracy", "Remote Clique", "Chamfer"):
        table.add_column(col, justify="right")
    for r in result.table:
        table.add_row(r["set"], str(r["n_train"]), f"{r['macro_f1']:.3f} ± {r['macro_f1_sd']:.3f}",
                      f"{r['accuracy']:.3f} ± {r['accuracy_sd']:.3f}", f"{r['remote_clique']:.3f}", f"{r['chamfer']:.3f}")
    out.print(table)
    for line in (c["verdict"] for c in result.comparison):
        out.print(line)
    if result.agreement:
        for name, e in result.agreement["sets"].items():
            out.print(f"accuracy vs agreement ({name}): R^2 {e['r2']:.3f}, Spearman rho {e['spearman_rho']:.3f}")
    out.print(f"outputs in [bold]{result.out_dir}[/] (report.html, table.md, *.png, manifest.json)")
