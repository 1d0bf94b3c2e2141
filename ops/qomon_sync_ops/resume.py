"""`qomon-sync resume`: probe Qomon now, when the sync is paused.

The pause (docs/architecture.md, "When Qomon is down or refuses the key: the pause") ends
by itself at the probe that finds Qomon answering; probes come every 1 to 5 minutes. After
fixing the cause (a valid key put in the secret, Qomon back), this asks for the next
probe now: it sets the pause's next probe to now, then invokes the stack's pause probe
function (local mode's probe runs every 2 seconds and takes it from there), and says what
came of it. Nothing is forced: a probe that still fails leaves the sync paused.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TextIO

from botocore.exceptions import ClientError

from qomon_sync.adapters.space_pause import SpacePauses, place_of
from qomon_sync_ops.cli import execute
from qomon_sync_ops.target import OpsError, Target
from qomon_sync_ops.target import add_arguments as add_target_arguments

REFUSED = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
"""What Lambda answers to credentials without the permission."""
LOCAL_WAIT_S = 15.0
"""How long to wait for local mode's probe (every 2 s) to take the request."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)


def run_from_args(args: argparse.Namespace) -> int:
    return execute(args, run)


def run(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    if not target.staging_table:
        raise OpsError(
            f"{target.description} does not say where its staging table is (a stack deployed "
            "before this version): redeploy it with `sam deploy`, then run this again"
        )
    pauses = SpacePauses(
        target.client("dynamodb"), target.staging_table, place_of(target.qomon_base_url)
    )
    pause = pauses.probe_now()
    if pause is None:
        print("qomon-sync is not paused: nothing to resume.", file=out)
        return 0
    print(f"qomon-sync is paused ({pause.description}): probing Qomon now.", file=out)
    said = _wait_for_local(pauses, pause.probes) if target.local else _invoke(target)
    after = pauses.get()
    if after is None:
        print(f"Resumed: Qomon answers; the waiting events are being applied ({said}).", file=out)
        return 0
    print(
        f"Still paused: {after.description} ({said}). Fix the cause (docs/runbook.md, "
        "The pause); the probe keeps trying by itself.",
        file=out,
    )
    return 1


def _wait_for_local(pauses: SpacePauses, probes: int) -> str:
    deadline = time.monotonic() + LOCAL_WAIT_S
    while time.monotonic() < deadline:
        pause = pauses.get()
        if pause is None:
            return "local mode's probe found Qomon answering"
        if pause.probes > probes:
            return "local mode's probe still found Qomon failing"
        time.sleep(0.5)
    return "local mode's probe did not run in time: is `qomon-sync local` running?"


def _invoke(target: Target) -> str:
    if not target.pause_probe_function:
        raise OpsError(
            f"{target.description} has no pause probe function (deployed before this "
            "version): redeploy it with `sam deploy`; the next probe is set for now"
        )
    try:
        answer = target.client("lambda").invoke(
            FunctionName=target.pause_probe_function, InvocationType="RequestResponse"
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code not in REFUSED:
            raise
        raise OpsError(
            f"invoking the pause probe function {target.pause_probe_function} was refused "
            f"({code}): these credentials lack lambda:InvokeFunction on it. The next probe "
            "was set to now, so the scheduled probe runs it within a minute; "
            "`qomon-sync status` then shows whether the sync resumed"
        ) from None
    body = answer["Payload"].read()
    try:
        return str(json.loads(body).get("result") or "the probe said nothing")
    except (ValueError, AttributeError):
        return "the probe's answer was not understood"
