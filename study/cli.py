"""The `study` command: run, sweep, tune, analyze, bench, and the one-command quickstart.

Every command validates its input first and exits with code 2 and a message that names the
field and the fix, before anything is written to the tracking store or any trial starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Prune a big network or train a small one? Matched, tracked, tested.")

SpaceArg = Annotated[str, typer.Argument(
    help="A space name (./search_spaces/NAME.py, else a shipped one: `study spaces`) or a path.")]
UriOpt = Annotated[str | None, typer.Option("--tracking-uri",
                                            help="MLflow store (default: ./mlruns/mlflow.db).")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Where MNIST/CIFAR files "
                                                 "live (default: $STUDY_DATA_DIR or ./data).")]
DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")]
ChannelsLastOpt = Annotated[bool | None, typer.Option(
    "--channels-last/--no-channels-last", help="NHWC memory layout for conv nets (default: the "
    "space's channels_last, off: it can crash small conv nets on some CPUs).")]
CompileOpt = Annotated[bool, typer.Option(
    "--compile", help="torch.compile the training forward (pays on long GPU runs, not on CPU).")]
PackOpt = Annotated[int | None, typer.Option(
    "--pack-size", min=1, help="Train up to K ready trials of one shape as one stacked model "
    "(each still its own trial and run); 1: one at a time. Default: per net, the size that "
    "trains fastest here (measured once per machine and net; 1 where packing does not pay).")]


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def _execution(device: str, channels_last: bool | None, compile: bool, space=None):
    """How trials run here (channels-last: the flag, else the space's choice); a CUDA device
    that is not there fails now."""
    from study.execution import Execution

    if channels_last is None:
        channels_last = space.channels_last if space is not None else False
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise fail(f"--device {device}: no CUDA device here; use --device cpu")
    elif device != "cpu":
        raise fail(f"--device {device}: unknown; use cpu, cuda or cuda:N")
    return Execution(device, channels_last, compile)


def _pack_sizes(pack_size: int | None, device: str, space):
    """`--pack-size` for every trial, else each net's measured best (`study.packing`)."""
    from study.packing import PackSizes
    from study.plan import threads_for

    return PackSizes(pack_size, device, threads_for(space))


def _prepare(space_name: str, uri: str | None, data_dir: Path | None, select: list[str],
             device: str = "cpu", open_store: bool = True):
    """Load and validate the space, the selection and the store, before any work starts.
    `open_store=False` (a dry run) reads the store if there is one and writes nothing: the
    tracker returned is None."""
    from study.execution import bf16_supported
    from study.space import SpaceError, load_space
    from study.space import select as select_trials
    from study.tracking import Tracker, TrackingError

    if data_dir is not None:
        os.environ["STUDY_DATA_DIR"] = str(data_dir)
    try:
        space, source = load_space(space_name)
        tuned = None
        if space.tuned_keys():
            from study.contract import default_uri
            from study.tuning import tuned_values

            tuned = tuned_values(space, uri or default_uri())
        trials = select_trials(space.expand(tuned), select)
        if not bf16_supported(device) and any(
                t.dense.train.precision == "bf16" for t in trials):
            raise SpaceError(f"train.precision: bf16 needs a GPU with bfloat16 (Ampere or newer)"
                             f" and {device} has none; set precision fp32 or run on the CPU")
        _check_data(trials)
        tracker = Tracker(space.name, uri) if open_store else None
    except (SpaceError, TrackingError, FileNotFoundError) as err:
        raise fail(str(err)) from None
    return space, source, trials, tracker


def _check_address(address: str | None, timeout: float = 5.0) -> None:
    """An unreachable Ray address fails in seconds, before anything is written or started."""
    import socket

    if not address or address == "auto":
        return
    hostport = address.removeprefix("ray://").rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise fail(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise fail(f"--address {address}: no Ray cluster answers there ({err}); start it with "
                   "`ray start --head` or fix the address") from None


def _check_data(trials) -> None:
    """A dataset whose files are missing fails now, not in the middle of a sweep."""
    from study.data import load_data

    for name in sorted({t.dense.data.name for t in trials}):
        if name not in ("mnist1d", "digits"):
            load_data(name, data_dir=os.environ.get("STUDY_DATA_DIR"))


@app.command()
def run(space: SpaceArg,
        select: Annotated[list[str] | None, typer.Option(
            "--select", help="Run a subset: KEY=VALUE, once per key, e.g. --select seed=0 "
            "--select arm=reinit.")]
        = None,
        tracking_uri: UriOpt = None, data_dir: DataDirOpt = None, device: DeviceOpt = "cpu",
        channels_last: ChannelsLastOpt = None, compile: CompileOpt = False,
        isolate: Annotated[bool, typer.Option(
            "--isolate/--no-isolate", help="Run trials in a watched child process, so a crash "
            "or hang is recorded and the run goes on (--no-isolate: in this process, for a "
            "debugger).")] = True, pack_size: PackOpt = None) -> None:
    """Run every trial of SPACE here, one pack after the other (no Ray)."""
    from study.runner import run_sequential

    _execution(device, channels_last, compile)
    loaded, source, trials, tracker = _prepare(space, tracking_uri, data_dir, select or [],
                                               device)
    execution = _execution(device, channels_last, compile, loaded)
    counts = run_sequential(loaded, source, trials, tracker, execution=execution,
                            echo=typer.echo, isolate=isolate,
                            pack_size=_pack_sizes(pack_size, device, loaded))
    typer.echo(f"done: {counts or 'nothing to run'}; experiment {loaded.name!r} in {tracker.uri}")
    if counts.get("failed"):
        raise typer.Exit(code=1)


AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="Join a Ray cluster: auto or ray://host:10001 (default: local Ray).")]


@app.command()
def sweep(space: SpaceArg,
          select: Annotated[list[str] | None, typer.Option("--select", help="KEY=VALUE subset.")]
          = None,
          tracking_uri: UriOpt = None, data_dir: DataDirOpt = None, address: AddressOpt = None,
          max_concurrent: Annotated[int | None, typer.Option(
              "--max-concurrent", min=1, help="At most N trials at once.")] = None,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")]
          = False,
          device: DeviceOpt = "cpu", channels_last: ChannelsLastOpt = None,
          compile: CompileOpt = False, pack_size: PackOpt = None) -> None:
    """Run SPACE on Ray Tune: matched trials in dependency order, idempotent and resumable."""
    _check_address(address)
    _execution(device, channels_last, compile)
    loaded, source, trials, tracker = _prepare(space, tracking_uri, data_dir, select or [],
                                               device, open_store=not dry_run)
    execution = _execution(device, channels_last, compile, loaded)
    from study.contract import default_uri
    from study.estimate import local_slots, plan_text
    from study.tracking import done_ids

    done = set(tracker.done()) if tracker else done_ids(loaded.name, tracking_uri or default_uri())
    slots = local_slots(loaded, max_concurrent)  # a cluster runs more at a time
    sizes = _pack_sizes(pack_size, device, loaded)
    typer.echo(plan_text(loaded, trials, done, sizes, slots, device))
    if dry_run:
        from study.option_gains import advice

        typer.echo("  " + advice([t.dense.model.name for t in trials], device))
        return
    from study.sweep import run_sweep

    try:
        counts = run_sweep(loaded, source, trials, tracker, address=address,
                           max_concurrent=max_concurrent, execution=execution, echo=typer.echo,
                           pack_size=sizes)
    except ConnectionError as err:
        raise fail(f"--address {address}: {err}" if address else str(err)) from None
    typer.echo(f"done: {counts}; experiment {loaded.name!r} in {tracker.uri}")
    if counts.get("failed"):
        raise typer.Exit(code=1)


@app.command()
def tune(space: SpaceArg,
         arm: Annotated[str, typer.Option("--arm", help="The arm whose lr is tuned.")],
         trials: Annotated[int, typer.Option("--trials", min=1, help="Optuna trials (the same "
                                             "for every arm: an equal budget).")] = 8,
         tracking_uri: UriOpt = None, data_dir: DataDirOpt = None, address: AddressOpt = None,
         device: DeviceOpt = "cpu", channels_last: ChannelsLastOpt = None,
         compile: CompileOpt = False) -> None:
    """Tune ARM's learning rate with Optuna TPE on the validation split (`<space>-tuning`)."""
    _check_address(address)
    _execution(device, channels_last, compile)
    from study.specs import ARMS, STABILITY_ARMS

    tunable = [a for a in ARMS if a != "dense" and a not in STABILITY_ARMS]
    if arm not in tunable:
        raise fail(f"--arm {arm}: unknown or untunable arm; allowed: " + ", ".join(tunable))
    loaded, source, specs, tracker = _prepare(space, tracking_uri, data_dir, [], device)
    execution = _execution(device, channels_last, compile, loaded)
    from study.space import SpaceError
    from study.tuning import tune_arm

    try:
        tune_arm(loaded, source, specs, tracker, arm, trials, address=address,
                 execution=execution, echo=typer.echo)
    except SpaceError as err:
        raise fail(str(err)) from None


@app.command()
def quickstart(tracking_uri: UriOpt = None,
               out: Annotated[Path, typer.Option(help="Figures and report.")] = Path("out"),
               ) -> None:
    """The offline MNIST-1D study end to end: sweep, then figures and the verdict."""
    sweep("quickstart", tracking_uri=tracking_uri, select=None, data_dir=None, address=None,
          max_concurrent=None, dry_run=False, device="cpu", channels_last=None, compile=False,
          pack_size=None)
    analyze("quickstart", out=out / "quickstart", tracking_uri=tracking_uri)


@app.command()
def spaces() -> None:
    """List the search spaces: the shipped ones and any in ./search_spaces/ (which win)."""
    from study.space import SPACES_DIR, space_files, space_summary

    files = space_files()
    width = max(map(len, files), default=0)
    for name, path in files.items():
        local = "" if path.parent.resolve() == SPACES_DIR else f"  [{path}]"
        typer.echo(f"{name:<{width}}  {space_summary(path)}{local}")


@app.command()
def analyze(experiment: Annotated[str, typer.Argument(help="The MLflow experiment (space name).")],
            out: Annotated[Path | None, typer.Option(help="Output folder.")] = None,
            tracking_uri: UriOpt = None) -> None:
    """Figures, tables and the statistical verdict for EXPERIMENT."""
    from analysis import AnalysisError
    from analysis import analyze as run_analysis

    try:
        report = run_analysis(experiment, out or Path("out") / experiment, tracking_uri,
                              echo=typer.echo)
    except AnalysisError as err:
        raise fail(str(err)) from None
    typer.echo(f"report: {report}")


@app.command()
def bench(quick: Annotated[bool, typer.Option("--quick", help="Small sizes, under 3 minutes "
                                              "on 2 cores (2 s orchestration trials).")] = False,
          out: Annotated[Path, typer.Option(help="bench.json, bench/speed PNG+PDF.")]
          = Path("out") / "bench",
          tracking_uri: Annotated[str | None, typer.Option(
              "--tracking-uri", help="A store with a finished quickstart: adds its wall time "
              "against the critical path.")] = None,
          part: Annotated[list[str] | None, typer.Option(
              "--part", help="Run only these: trainer, options, orchestration, inference, "
              "efficiency, packed.")]
          = None,
          threads: Annotated[int, typer.Option(min=1, help="Torch threads in-process.")] = 1,
          docs: Annotated[bool, typer.Option(help="Also refresh the README's figure "
                                             "docs/figures/speed.png (a checkout only).")]
          = False,
          profile: Annotated[bool, typer.Option(help="cProfile each part: OUT/profile/*.txt")]
          = False,
          device: Annotated[str, typer.Option(help="Where the options and packed parts train: "
                                              "cuda for the GPU check (the others measure the "
                                              "CPU).")]
          = "cpu") -> None:
    """Benchmark the study against bare PyTorch and show what pruning buys in speed."""
    from bench import PARTS, BenchConfig, run_bench

    unknown = sorted(set(part or []) - set(PARTS))
    if unknown:
        raise fail(f"--part {', '.join(unknown)}: unknown; allowed: {', '.join(PARTS)}")
    _execution(device, True, False)  # a CUDA device that is not here fails now
    config = BenchConfig.for_mode(quick, threads=threads, tracking_uri=tracking_uri,
                                  parts=tuple(p for p in PARTS if p in (part or PARTS)),
                                  device=device)
    root = Path(__file__).resolve().parents[1]
    figure = (root if (root / "pyproject.toml").exists() else Path.cwd()) / "docs" / "figures"
    results = run_bench(config, out, figure / "speed.png" if docs else None, echo=typer.echo,
                        profile=profile)
    typer.echo(results["table"])
    typer.echo(f"wrote {', '.join(results['files'].values())}")


@app.command()
def ui(space: Annotated[str | None, typer.Argument(
           help="A study (experiment) to link to; default: every study in the store.")] = None,
       tracking_uri: UriOpt = None,
       port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 5000,
       host: Annotated[str, typer.Option(help="Address to bind (default: this machine only)."
                                         )] = "127.0.0.1") -> None:
    """Browse the study's runs in the MLflow UI: prints the link to each study's runs table and
    saved views (model-training view; telemetry off; Ctrl-C stops it)."""
    import socket
    import sys

    from mlflow.tracking import MlflowClient

    from study import browse
    from study.contract import artifact_root, default_uri, relocate, store_exists, unreachable

    uri = tracking_uri or default_uri()
    server = uri.startswith(("http://", "https://"))
    down = unreachable(uri)
    if down is not None:
        raise fail(f"--tracking-uri {uri}: tracking server unreachable ({down}); start it "
                   "(scripts/tracking_server.sh) or fix --tracking-uri")
    if not store_exists(uri):
        raise fail(f"--tracking-uri {uri}: no tracking store there; run `study run` or "
                   "`study sweep` first, or point --tracking-uri at a store")
    if not server:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError as err:
                raise fail(f"--port {port}: cannot listen on {host}:{port} ({err}); "
                           "pass another --port") from None
        relocate(uri)  # a moved or copied study folder: its own artifacts
    client = MlflowClient(uri)
    found = browse.studies(client, space)
    if space is not None and not found:
        known = ", ".join(e.name for e in browse.studies(client)) or "none"
        raise fail(f"{space}: no such study in {uri}; studies there: {known}")
    for experiment in found:
        browse.write_views(client, experiment.experiment_id)
        colored = browse.color_runs(client, experiment.experiment_id)
        if colored:
            typer.echo(f"{experiment.name}: coloured {colored} earlier runs by arm")
    base = uri.rstrip("/") if server else f"http://{host}:{port}"
    lines = browse.links(base, found) or [f"no study in {uri} yet: run `study sweep` first"]
    if server:  # a tracking server serves the UI itself
        typer.echo("\n".join([f"MLflow UI at {base}/#/experiments?{browse.ML_VIEW}", *lines]))
        return
    typer.echo("\n".join([f"MLflow UI for {uri} at {base}/#/experiments?{browse.ML_VIEW} "
                          "(Ctrl-C stops it)", *lines]))
    command = browse.server_command(sys.executable, uri, host, port, artifact_root(uri))
    code = browse.serve(command, browse.server_env())
    if code:
        raise typer.Exit(code)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":
    main()
