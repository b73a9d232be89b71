"""What an attack reports: the forget metrics and model utility before and after, for the model and the retain model.

Torch-free (it reads summaries, plain dicts keyed as :data:`unlearn.names.SUMMARY_KEYS`), so
``compare`` and ``fit``'s summary can use it without loading a model.

For each attack, with ``M`` the model under test and ``R`` the retain model (each attack is applied
to both):

- ``change.model[k] = M_after[k] - M_before[k]``, ``change.retain[k] = R_after[k] - R_before[k]``;
- ``change.beyond_retain[k] = change.model[k] - change.retain[k]``: what the attack brought back
  that it would also not have taught a model that never saw the forget set.

Forget quality after an attack compares ``M_after`` with ``R_after`` (both attacked alike, so the
attack's own effect cancels); the retain model's forget quality after the attack compares
``R_after`` with ``R_before`` (how far the attack alone moves it). Forget quality is a p-value, so
it is reported, not differenced.
"""

from __future__ import annotations

from unlearn.names import FORGET_QUALITY, MODEL_UTILITY, format_number, metric_key

# The numbers each attack reports, in table order.
FORGET_KEYS = tuple(metric_key("forget", figure) for figure in ("probability", "rouge_l", "truth_ratio"))
REPORTED_KEYS = (FORGET_QUALITY, *FORGET_KEYS, MODEL_UTILITY)
TITLES = {FORGET_QUALITY: "forget quality", FORGET_KEYS[0]: "forget probability", FORGET_KEYS[1]: "forget ROUGE-L",
          FORGET_KEYS[2]: "forget truth ratio", MODEL_UTILITY: "model utility"}
DIFFERENCED = (*FORGET_KEYS, MODEL_UTILITY)  # forget quality is a p-value: reported, not differenced


def _difference(after: dict | None, before: dict | None) -> dict[str, float | None] | None:
    if after is None or before is None:
        return None
    return {key: None if after.get(key) is None or before.get(key) is None else after[key] - before[key]
            for key in DIFFERENCED}


def attack_entry(description: str, settings: dict, model_before: dict, model_after: dict,
                 retain_before: dict | None, retain_after: dict | None, **extra) -> dict:
    """One attack's record for ``attack.json``: the summaries (as ``EvalResult.summary()``) and their differences."""
    model, retain = _difference(model_after, model_before), _difference(retain_after, retain_before)
    beyond = None if model is None or retain is None else {
        key: None if model[key] is None or retain[key] is None else model[key] - retain[key] for key in DIFFERENCED}
    return {"description": description, "settings": settings,
            "model": {"before": model_before, "after": model_after},
            "retain": None if retain_before is None else {"before": retain_before, "after": retain_after},
            "change": {"model": model, "retain": retain, "beyond_retain": beyond}, **extra}


def headline(report: dict) -> dict[str, float | None]:
    """Flat numbers of every attack, for ``compare``'s columns.

    Keys: ``attack/<name>/<metric key>`` (the model after the attack) and
    ``attack/<name>/beyond_retain/<metric key>`` (its change beyond the retain model's).
    """
    out = {}
    for name, entry in report.get("attacks", {}).items():
        for key in REPORTED_KEYS:
            out[f"attack/{name}/{key}"] = entry["model"]["after"].get(key)
        beyond = entry["change"]["beyond_retain"] or {}
        for key in DIFFERENCED:
            out[f"attack/{name}/beyond_retain/{key}"] = beyond.get(key)
    return out


def _cell(value: float | None, key: str, signed: bool = False) -> str:
    digits = "g" if key == FORGET_QUALITY else ".3f"
    if signed and value is not None:
        return ("+" if value >= 0 else "") + format_number(value, digits)
    return format_number(value, digits)


def format_attack(name: str, entry: dict, level: int = 2) -> str:
    """Markdown of one attack: a line on what it did and a table of the numbers before and after."""
    retain, change = entry["retain"], entry["change"]
    head = ["model before", "model after", "change"]
    if retain is not None:
        head += ["retain before", "retain after", "retain change", "change beyond retain"]
    lines = [f"{'#' * level} {name}", "", entry["description"] + ".", "",
             "| metric | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for key in REPORTED_KEYS:
        differenced = key in DIFFERENCED
        cells = [_cell(entry["model"]["before"].get(key), key), _cell(entry["model"]["after"].get(key), key),
                 _cell(change["model"][key], key, True) if differenced else "—"]
        if retain is not None:
            cells += [_cell(retain["before"].get(key), key), _cell(retain["after"].get(key), key)]
            cells += [_cell(change["retain"][key], key, True), _cell(change["beyond_retain"][key], key, True)] \
                if differenced else ["—", "—"]
        lines.append(f"| {TITLES[key]} | " + " | ".join(cells) + " |")
    if retain is None:
        lines += ["", "No retain model: forget quality and the retain baseline are unavailable "
                  "(set model.retain_path)."]
    return "\n".join(lines) + "\n"


def format_report(report: dict, level: int = 1) -> str:
    """Markdown of ``attack.json``: the models, then one section per attack, then how to read the numbers."""
    lines = [f"{'#' * level} Robustness of `{report['model']}`", "",
             f"Retain model: `{report['retain_model']}`" if report.get("retain_model") else "Retain model: none", ""]
    for name, entry in report["attacks"].items():
        lines.append(format_attack(name, entry, level + 1))
    lines += ["Knowledge coming back shows as forget probability and ROUGE-L going up and the forget truth ratio going "
              "down. \"Change beyond retain\" subtracts what the same attack does to the retain model, which never "
              "saw the forget set: near 0 means nothing hidden came back. After an attack, the model's forget "
              "quality compares it with the retain model attacked alike; the retain model's compares it with "
              "itself before the attack (docs/robustness.md).", ""]
    return "\n".join(lines)
