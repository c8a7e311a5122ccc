"""``tagifai models list / approve / rollback / history``: the registered versions, the human gate and
the alias log (:class:`tagifai.registry.Registry`)."""

from __future__ import annotations

import argparse
import json

from tagifai_cli.commands import help_of
from tagifai_cli.options import settings_from


def _registry(args: argparse.Namespace):
    from tagifai.registry import Registry

    settings = settings_from(args)
    return Registry(args.model_name or settings.model_name, settings.mlflow_tracking_uri)


def _fmt(value) -> str:
    return "-" if value is None or value == "" else f"{value:.4f}" if isinstance(value, float) else str(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    rows = registry.list_versions()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no versions of {registry.model_name} at {registry.tracking_uri}")
        return 0
    print(
        _table(
            ["version", "aliases", "f1", "decision", "created"],
            [
                [str(r["version"]), ",".join(r["aliases"]) or "-", _fmt(r["f1"]), r["decision"] or "-", r["created"]]
                for r in rows
            ],
        )
    )
    return 0


def _print_move(move, model_name: str) -> None:
    before = "-" if move.from_version is None else f"v{move.from_version}"
    print(f"{model_name}@{move.alias}: {before} -> v{move.to_version} ({move.action} by {move.actor}: {move.reason})")


def cmd_approve(args: argparse.Namespace) -> int:
    registry = _registry(args)
    _print_move(registry.approve(args.version, args.reason or "", force=args.force), registry.model_name)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    registry = _registry(args)
    _print_move(registry.rollback(args.reason or ""), registry.model_name)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    registry = _registry(args)
    moves = registry.alias_history(args.alias)
    if args.json:
        print(json.dumps([m.to_dict() for m in moves], indent=2))
        return 0
    if not moves:
        print(f"no alias moves of {registry.model_name} recorded")
        return 0
    print(
        _table(
            ["when (UTC)", "alias", "from", "to", "action", "who", "why"],
            [
                [m.moved_at, m.alias, _fmt(m.from_version), str(m.to_version), m.action, m.actor, m.reason]
                for m in moves
            ],
        )
    )
    return 0


def add_parser(sub) -> None:
    models = sub.add_parser("models", help=help_of("models"))
    msub = models.add_subparsers(dest="models_command", required=True)

    def flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--home", help="state folder (TAGIFAI_HOME; default .tagifai in the project)")
        p.add_argument("--mlflow-tracking-uri", help="MLflow tracking URI (default sqlite in the state folder)")
        p.add_argument("--model-name", help="registered model (TAGIFAI_MODEL_NAME; default tagifai)")

    ls = msub.add_parser("list", help="versions with aliases, test f1, decision and creation time")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    flags(ls)
    ls.set_defaults(func=cmd_list)

    ap = msub.add_parser("approve", help="make VERSION the champion (the human gate)")
    ap.add_argument("version", help="the version number")
    ap.add_argument("--reason", help="why (recorded in the alias log)")
    ap.add_argument("--force", action="store_true", help="approve a version the evaluate step rejected")
    flags(ap)
    ap.set_defaults(func=cmd_approve)

    rb = msub.add_parser("rollback", help="move the champion back to the previous champion")
    rb.add_argument("--reason", help="why (recorded in the alias log)")
    flags(rb)
    rb.set_defaults(func=cmd_rollback)

    hi = msub.add_parser("history", help="the alias log: every move of champion and challenger, oldest first")
    hi.add_argument("--alias", help="only this alias (champion or challenger)")
    hi.add_argument("--json", action="store_true", help="print JSON instead of a table")
    flags(hi)
    hi.set_defaults(func=cmd_history)
