"""What one log entry says, in a line for people: the incident timeline and
its report, `cmi audit show`, the console's audit view. An investigator
reads these rows instead of the entries' JSON, so every action the registry
records has its own line; an action without one is shown by name (a newer
entry read by an older tool).

Entries are read as written (verified, but possibly of an older format), so
every field is read with a default rather than assumed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cmi_console.core.deployments import shares_text

# the timeline's "kind" column: what sort of event, for scanning and filtering
KINDS = {
    "gate.request": "request",
    "gate.approve": "decision",
    "gate.reject": "decision",
    "gate.promote": "promotion",
    "break-glass.sign": "break-glass",
    "break-glass.execute": "promotion",
    "version.archive": "promotion",
    "version.retire": "retirement",
    "validation.run": "validation",
    "deploy.start": "deployment",
    "deploy.advance": "deployment",
    "deploy.pause": "deployment",
    "deploy.resume": "deployment",
    "deploy.complete": "deployment",
    "deploy.rollback": "rollback",
    "monitor.ingest": "monitoring",
    "monitor.labels": "monitoring",
    "monitor.evaluate": "monitoring",
    "alert.raise": "alert",
    "alert.close": "alert",
    "retrain.trained": "retraining",
}


def kind(action: str) -> str:
    return KINDS.get(action, action.split(".", 1)[0])


def summary(action: str, data: dict[str, Any], time: str) -> str:
    """The line for an entry of `action` with `data`, recorded at `time`."""
    if action == "incident.open":  # a break-glass opens its incident at the entry's time
        return f"reported; happened at {data.get('at') or time}"
    line = _LINES.get(action)
    return line(data, action) if line is not None else action


def _numbers(items: Any, prefix: str = "#") -> str:
    return ", ".join(f"{prefix}{i}" for i in items or [])


def _then(text: Any, sep: str = ": ") -> str:
    """`text` after a separator, or nothing when it is empty."""
    return f"{sep}{text}" if text else ""


def _paren(text: Any) -> str:
    return f" ({text})" if text else ""


def to_stage(stage: Any, env: Any) -> str:
    """ "to production", with the environment only where it is not the
    stage's name ("to production (eu-west)")."""
    return f"to {stage}" + (f" ({env})" if env and env != stage else "")


def _to(st: dict[str, Any]) -> str:
    return to_stage(st.get("to_stage"), st.get("environment"))


def _decision(d: dict[str, Any], action: str) -> str:
    st = d.get("statement") or {}
    return f"{st.get('decision', action)} {_to(st)}{_then(st.get('comment'))}"


def _request(d: dict[str, Any], _a: str) -> str:
    return f"requested {_to(d)} (request #{d.get('request')}){_then(d.get('comment'))}"


def _break_glass_sign(d: dict[str, Any], _a: str) -> str:
    st = d.get("statement") or {}
    return f"break-glass #{d.get('break_glass')} {_to(st)}: first admin's signature"


def _break_glass_execute(d: dict[str, Any], _a: str) -> str:
    st = d.get("statement") or {}
    bypassed = ", ".join(c.get("condition", "?") for c in d.get("bypassed") or [])
    return (
        f"break-glass #{d.get('break_glass')} {_to(st)} signed by "
        f"{', '.join(d.get('admins') or [])}{_then(bypassed, '; bypassed ')}"
        f"{_then(d.get('incident'), '; incident #')}"
    )


def _archive(d: dict[str, Any], _a: str) -> str:
    return (
        f"{d.get('model')}:{d.get('version')} left {d.get('from_stage')}, "
        f"superseded by v{d.get('superseded_by')}"
    )


def _retire(d: dict[str, Any], _a: str) -> str:
    return (
        f"retired{_then(d.get('reason'))}"
        f"{_then(_numbers(d.get('deployments_ended')), '; deployments ended ')}"
        f"{_then(', '.join(d.get('aliases_removed') or []), '; aliases removed ')}"
    )


def _deploy(d: dict[str, Any], action: str) -> str:
    st = d.get("statement") or {}
    return (
        f"{action.split('.', 1)[1]} {d.get('strategy')} in {d.get('environment')}: "
        f"serving {shares_text(d.get('shares') or {}) or 'nothing'}"
        f"{_paren(st.get('comment'))}"
    )


def _alias(d: dict[str, Any], _a: str) -> str:
    was = d.get("previous")
    return f"alias {d.get('alias')} -> v{d.get('version')}{_paren(was and f'was v{was}')}"


def _tags(d: dict[str, Any], _a: str) -> str:
    set_ = ", ".join(f"{k}={v}" for k, v in (d.get("set") or {}).items())
    removed = ", ".join(d.get("removed") or [])
    return "tags" + _then(set_, " set ") + _then(removed, "; removed " if set_ else " removed ")


def _evaluate(d: dict[str, Any], _a: str) -> str:
    alerts = _numbers(d.get("alerts"))
    actions = ", ".join(d.get("deployment_actions") or [])
    return (
        f"evaluated v{d.get('version')} in {d.get('environment')} over "
        f"{d.get('windows')} window(s): {('alert ' + alerts) if alerts else 'no alert'}"
        f"{_then(actions, '; rollout ')}"
    )


_LINES: dict[str, Callable[[dict[str, Any], str], str]] = {
    "validation.run": lambda d, _a: (
        f"validation {d.get('suite')}: {d.get('status')} (run #{d.get('run')})"
    ),
    "gate.request": _request,
    "gate.approve": _decision,
    "gate.reject": _decision,
    "gate.promote": _decision,
    "break-glass.sign": _break_glass_sign,
    "break-glass.execute": _break_glass_execute,
    "version.register": lambda d, _a: (
        f"registered {d.get('model')}:{d.get('version')} ({d.get('format')})"
    ),
    "version.tag": _tags,
    "version.archive": _archive,
    "version.retire": _retire,
    "alias.set": _alias,
    "alias.delete": lambda d, _a: f"alias {d.get('alias')} removed",
    "model.create": lambda d, _a: f"model created{_then(d.get('owner'), '; owner ')}",
    "model.tier": lambda d, _a: (
        f"tier {d.get('old_tier')} -> {d.get('new_tier')}{_then(d.get('reason'))}"
    ),
    "model.consumer.add": lambda d, _a: (
        f"consumer {d.get('consumer')} added{_paren(d.get('contact'))}"
    ),
    "policy.activate": lambda d, _a: f"policy {d.get('source')} activated",
    "deploy.start": _deploy,
    "deploy.advance": _deploy,
    "deploy.pause": _deploy,
    "deploy.resume": _deploy,
    "deploy.complete": _deploy,
    "deploy.rollback": _deploy,
    "monitor.ingest": lambda d, _a: (
        f"window #{d.get('window')} {d.get('name')} ({d.get('rows')} rows)"
    ),
    "monitor.labels": lambda d, _a: f"late labels for window #{d.get('window')}",
    "monitor.evaluate": _evaluate,
    "alert.raise": lambda d, _a: f"alert #{d.get('alert')}: {d.get('message')}",
    "alert.close": lambda d, _a: f"alert #{d.get('alert')} closed{_then(d.get('comment'))}",
    "retrain.trained": lambda d, _a: (
        f"{d.get('candidate')} retrained from {d.get('from')} for retraining request "
        f"{_numbers(d.get('requests'))}"
    ),
    "gate.withdraw": lambda d, _a: (
        f"request #{d.get('request')} withdrawn{_then(d.get('comment'))}"
    ),
    "workspace.init": lambda d, _a: f"workspace created; first admin {d.get('admin')}",
    "user.add": lambda d, _a: (
        f"user {d.get('user')} added{_then(', '.join(d.get('roles') or []), ' as ')}"
    ),
    "user.disable": lambda d, _a: f"user {d.get('user')} disabled{_then(d.get('reason'))}",
    "role.grant": lambda d, _a: f"role {d.get('role')} granted to {d.get('user')}",
    "role.revoke": lambda d, _a: f"role {d.get('role')} revoked from {d.get('user')}",
    "key.add": lambda d, _a: f"key {str(d.get('key'))[:16]} added for {d.get('user')}",
    "key.revoke": lambda d, _a: f"key {str(d.get('key'))[:16]} of {d.get('user')} revoked",
    "dataset.register": lambda d, _a: (
        f"dataset {d.get('dataset')}:{d.get('version')} registered ({d.get('rows')} rows)"
    ),
    "run.record": lambda d, _a: f"training run {d.get('run')} recorded",
    "incident.link": lambda d, _a: f"linked {d.get('kind')} {d.get('ref')}",
    "incident.note": lambda d, _a: f"note #{d.get('note')}",
    "incident.close": lambda d, _a: f"closed: {d.get('root_cause')}",
}
