"""`rupture` command line (CONTRACT.md). Exit codes: 0 all sessions succeeded, 1 any failed or was refused,
2 usage/config error (including a missing or tampered model at startup)."""

from __future__ import annotations

import pipeline.offline  # noqa: F401  (must come before any ML import)

import argparse
import logging
import sys
from pathlib import Path

from pipeline.config import Config, load_config
from pipeline.errors import ConfigError, ModelError, RuptureError, UsageError
from pipeline.process import init_process

log = logging.getLogger("rupture")
DEMO_DIR = Path(__file__).with_name("demo")


def _config(path: str | None, *, backend: str | None = None, workers: int | None = None,
            address: str | None = None) -> Config:
    """The config file (or the defaults) with `rupture run`'s runner options over it (--address alone
    implies the Ray backend)."""
    runner: dict[str, str | int] = {k: v for k, v in (("backend", backend), ("workers", workers),
                                                      ("ray_address", address)) if v is not None}
    if address and backend is None:
        runner["backend"] = "ray"
    return load_config(path, overrides={"runner": runner} if runner else None)


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.inputs import collect_jobs
    from pipeline.runner import run_batch

    cfg = _config(args.config, backend=args.backend, workers=args.workers, address=args.address)
    jobs, refusals = collect_jobs(args.inputs, args.consent_on_file)
    attestation = "operator attests consent is on file (--consent-on-file)" if args.consent_on_file else None
    result = run_batch(jobs, refusals, Path(args.out), cfg, force=args.force, attestation=attestation)
    print(f"{result.summary()}; outputs in {Path(args.out).resolve()}", file=sys.stderr)
    return result.exit_code


def cmd_tag(args: argparse.Namespace) -> int:
    from pipeline.inputs import SessionJob, dedupe, safe_session_id
    from pipeline.runner import run_batch
    from pipeline.session import TranscriptProcessor

    cfg = _config(args.config)
    jobs = []
    for raw in args.transcripts:
        p = Path(raw)
        if not p.is_file():
            raise UsageError(f"transcript not found: {raw}")
        sid = safe_session_id(p.parent.name if p.name == "session.json" else p.stem)
        jobs.append(SessionJob(session_id=sid, audio_path=p, consent_source="transcript"))
    jobs, refusals = dedupe(jobs, [])
    result = run_batch(jobs, refusals, Path(args.out), cfg, force=args.force, processor_factory=TranscriptProcessor)
    print(f"{result.summary()}; outputs in {Path(args.out).resolve()}", file=sys.stderr)
    return result.exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.inputs import read_manifest
    from pipeline.runner import run_batch

    manifest = DEMO_DIR / "manifest.csv"
    if not manifest.is_file():
        raise UsageError(f"the bundled demo session is missing ({manifest}); reinstall the package")
    cfg = _config(args.config)
    jobs, refusals = read_manifest(manifest)
    out = Path(args.out)
    result = run_batch(jobs, refusals, out, cfg, force=args.force)
    for o in result.outcomes:
        sdir = (out / o.session_id).resolve()
        if o.status in ("ok", "skipped"):
            print(f"demo session {o.session_id}: {o.status}")
            print(f"  session record: {sdir / 'session.json'}")
            report = sdir / "report.html"
            if report.exists():
                print(f"  review page:    {report}")
            print(f"  batch index:    {(out / 'index.html').resolve()}")
        else:
            print(f"demo session {o.session_id}: {o.status} ({o.stage}: {o.error})")
    return result.exit_code


def cmd_purge(args: argparse.Namespace) -> int:
    from pipeline.purge import purge, purge_jobs

    cfg = load_config(args.config)
    jobs = purge_jobs(args.inputs)
    items = purge(Path(args.out), jobs, args.older_than, transcripts=args.transcripts, dry_run=args.dry_run,
                  audit_log=cfg.runner.audit_log)
    verb = "would delete" if args.dry_run else "deleted"
    for i in items:
        what = " and ".join(i.deleted) or "nothing"
        note = f" (audio kept: {i.kept_audio_reason})" if i.kept_audio_reason else ""
        print(f"{i.session_id}: {verb} {what}{note}")
    n = sum(bool(i.deleted) for i in items)
    print(f"{n} session(s) purged (older than {args.older_than:g} days)" + (" [dry run]" if args.dry_run else ""),
          file=sys.stderr)
    failed = [i.session_id for i in items if i.audio_delete_failed]
    if failed:
        print(f"rupture: error: the recordings of {len(failed)} session(s) could not be deleted (listed above); "
              "they are still on disk", file=sys.stderr)
        return 1
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from models import store

    cfg = load_config(args.config)
    if args.action == "fetch":
        for r in store.fetch(args.names or None, cfg.models.store):
            print(f"{r.info.name:28s} {r.info.version:8s} {r.info.sha256[:16]}  {r.path}")
        return 0
    bad = 0
    for name in args.names or sorted(store.load_manifest()):
        try:
            r = store.resolve(name, cfg.models.store)
            print(f"ok       {name:28s} {r.info.sha256[:16]}  {r.path}")
        except ModelError as e:
            bad += 1
            print(f"FAILED   {name:28s} {e}")
    return 1 if bad else 0


def cmd_import_eaf(args: argparse.Namespace) -> int:
    from models.store import sha256_file
    from pipeline.exports import import_eaf
    from pipeline.runner import AuditLog, make_private_dir
    from pipeline.serialize import read_session_json, write_session_json

    session_path = Path(args.session)
    try:
        rec = read_session_json(session_path)
    except FileNotFoundError:
        raise UsageError(f"session record not found: {session_path}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # never quote the record's content
        raise UsageError(f"{session_path} is not a readable session.json of schema 1 ({type(e).__name__}); pass "
                         "the session.json that `rupture run` wrote") from None
    new = import_eaf(Path(args.eaf), rec)
    out = Path(args.out) if args.out else session_path
    coded = sum(e.type in ("rupture", "repair", "interruption") for e in new.events)
    audit_path = session_path.parent.parent / "audit.jsonl"  # the output folder the session belongs to
    audit = None
    try:
        if audit_path.is_file() or audit_path.is_symlink():
            audit = AuditLog(audit_path)  # opened first: a refused audit log stops the import before any write
        if not out.parent.exists():
            make_private_dir(out.parent)
        write_session_json(new, out)
        if audit is not None:
            audit.write("eaf_imported", session_id=rec.session_id, eaf_sha256=sha256_file(Path(args.eaf)),
                        written_to=str(out.resolve()), coded_events=coded)
    except OSError as e:
        raise UsageError(f"cannot write the imported session: {e.strerror or type(e).__name__}") from None
    finally:
        if audit is not None:
            audit.close()
    print(f"imported {coded} coded events into {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rupture", description=__doc__)
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="process recordings (files, folders, manifest .csv)")
    r.add_argument("inputs", nargs="+", metavar="INPUT")
    r.add_argument("--out", required=True)
    r.add_argument("--config")
    r.add_argument("--consent-on-file", action="store_true",
                   help="the operator attests that consent is on file for plain audio paths (audit-logged)")
    r.add_argument("--force", action="store_true", help="redo sessions whose outputs are already complete")
    r.add_argument("--backend", choices=("local", "ray"), help="where sessions run (default: config runner.backend)")
    r.add_argument("--address", help="Ray cluster address (implies --backend ray; default: a private local cluster)")
    r.add_argument("--workers", type=int, help="sessions at once: processes or Ray actors (default: config)")
    r.set_defaults(fn=cmd_run)

    t = sub.add_parser("tag", help="tag existing transcripts (.csv, .vtt with voices, session.json)")
    t.add_argument("transcripts", nargs="+", metavar="TRANSCRIPT")
    t.add_argument("--out", required=True)
    t.add_argument("--config")
    t.add_argument("--force", action="store_true")
    t.set_defaults(fn=cmd_tag)

    d = sub.add_parser("demo", help="run the bundled demo session")
    d.add_argument("--out", default="out/demo")
    d.add_argument("--config")
    d.add_argument("--force", action="store_true")
    d.set_defaults(fn=cmd_demo)

    pg = sub.add_parser("purge", help="retention: delete raw audio (and optionally transcripts) of old sessions")
    pg.add_argument("inputs", nargs="*", metavar="INPUT",
                    help="the manifests/folders/files given to `rupture run` (to find the raw audio)")
    pg.add_argument("--out", required=True, help="the output folder of `rupture run`")
    pg.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    pg.add_argument("--transcripts", action="store_true",
                    help="also delete transcript text (text exports, words, turn text, event evidence)")
    pg.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    pg.add_argument("--config")
    pg.set_defaults(fn=cmd_purge)

    m = sub.add_parser("models", help="provision (fetch) or verify the local model store")
    m.add_argument("action", choices=("fetch", "verify"))
    m.add_argument("names", nargs="*")
    m.add_argument("--config")
    m.set_defaults(fn=cmd_models)

    e = sub.add_parser("import-eaf", help="read an ELAN file a coder corrected back into session.json events")
    e.add_argument("eaf")
    e.add_argument("--session", required=True, help="the session.json to update")
    e.add_argument("--out", help="write here instead of updating --session in place")
    e.set_defaults(fn=cmd_import_eaf)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    init_process(log_level=logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.fn(args))
    except (UsageError, ConfigError) as e:
        print(f"rupture: error: {e}", file=sys.stderr)
        return 2
    except ModelError as e:
        print(f"rupture: model error: {e}", file=sys.stderr)
        return 2
    except RuptureError as e:
        print(f"rupture: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rupture: aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
