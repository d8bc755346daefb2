"""Quantizer flag sets as plain data: a recipe name, a recipe JSON file, or inline rules.

A flag set with `quantizer = ...` is made by the AI Edge Quantizer from the model's fp32
artifact (convert/tools/quantizer.py) instead of by the converter. This module only parses
and validates what the campaign says, without importing the quantizer (1.5 s): recipe names
are checked against the package where the recipe is built, and a wrong one is a reasoned
row. The recipe's content (a JSON file's too) goes into the flag set's options, so the
cache key changes when the file does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.core.errors import UsageError

RULE_MODES = ("dynamic", "weight_only", "static", "float")
GRANULARITIES = ("CHANNELWISE", "TENSORWISE", "BLOCKWISE_32", "BLOCKWISE_64", "BLOCKWISE_128",
                 "BLOCKWISE_256")
RULE_KEYS = {"mode": str, "regex": str, "operation": str, "weight_bits": int, "activation_bits": int,
             "granularity": str}


def _rule(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: a quantizer rule is a table like {{mode = \"weight_only\", weight_bits = 4}}")
    for key, value in raw.items():
        if key not in RULE_KEYS:
            raise UsageError(f"{where}: unknown rule key {key!r}; use {', '.join(RULE_KEYS)}")
        if not isinstance(value, RULE_KEYS[key]) or isinstance(value, bool):
            raise UsageError(f"{where}: {key} must be a {RULE_KEYS[key].__name__}, got {value!r}")
    mode = raw.get("mode")
    if mode not in RULE_MODES:
        raise UsageError(f"{where}: mode must be one of {', '.join(RULE_MODES)}, got {mode!r}")
    rule = {"mode": mode, "regex": raw.get("regex", ".*"), "operation": raw.get("operation", "*")}
    if mode != "float":
        rule["weight_bits"] = raw.get("weight_bits", 8)
        if rule["weight_bits"] not in (2, 4, 8):
            raise UsageError(f"{where}: weight_bits must be 2, 4 or 8, got {rule['weight_bits']}")
        rule["granularity"] = raw.get("granularity", "CHANNELWISE")
        if rule["granularity"] not in GRANULARITIES:
            raise UsageError(f"{where}: granularity must be one of {', '.join(GRANULARITIES)}")
    if mode == "static":
        rule["activation_bits"] = raw.get("activation_bits", 8)
        if rule["activation_bits"] not in (8, 16):
            raise UsageError(f"{where}: activation_bits must be 8 or 16, got {rule['activation_bits']}")
    return rule


def parse_quantizer(value: Any, where: str, base: Path | None = None) -> dict[str, Any]:
    """`quantizer = "static_wi8_ai8"`, `= "recipe.json"`, or a table with `recipe` and `rules`.

    Returns {"recipe": name or None, "recipe_json": the file's rules or None, "recipe_file":
    its path or None, "rules": [rule, ...]}: the rules apply after (over) the recipe."""
    if isinstance(value, str):
        value = {"recipe": value}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: quantizer is a recipe name, a recipe .json file or a table "
                         "{recipe = ..., rules = [...]}")
    unknown = set(value) - {"recipe", "rules"}
    if unknown:
        raise UsageError(f"{where}: unknown quantizer key {sorted(unknown)[0]!r}; use recipe and rules")
    out: dict[str, Any] = {"recipe": None, "recipe_json": None, "recipe_file": None, "rules": []}
    recipe = value.get("recipe")
    if recipe is not None and not isinstance(recipe, str):
        raise UsageError(f"{where}: quantizer recipe must be a name or a .json path, got {recipe!r}")
    if recipe and recipe.endswith(".json"):
        path = Path(recipe).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"{where}: cannot read recipe file {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: recipe file {path} is not JSON ({exc.msg} at line {exc.lineno}); "
                             "write a list of rules as the quantizer's recipes/*.json do") from None
        if not isinstance(content, list) or not all(isinstance(r, dict) for r in content):
            raise UsageError(f"{where}: recipe file {path} must hold a JSON list of rule objects")
        out["recipe_json"], out["recipe_file"] = content, str(path)
    elif recipe:
        out["recipe"] = recipe
    rules = value.get("rules", [])
    if not isinstance(rules, list):
        raise UsageError(f"{where}: quantizer rules must be a list of tables")
    out["rules"] = [_rule(r, f"{where}: rules[{i}]") for i, r in enumerate(rules)]
    if not (out["recipe"] or out["recipe_json"] or out["rules"]):
        raise UsageError(f"{where}: quantizer needs a recipe or at least one rule")
    return out


def needs_calibration(spec: dict[str, Any]) -> bool:
    """Static recipes record activation ranges first (once per model and data)."""
    if (spec.get("recipe") or "").startswith("static"):
        return True
    if any(r["mode"] == "static" for r in spec.get("rules", [])):
        return True
    for rule in spec.get("recipe_json") or []:
        config = rule.get("op_config", {})
        if config.get("activation_tensor_config") and config.get("compute_precision") == "INTEGER":
            if not config.get("explicit_dequantize", False):
                return True
    return False


def describe(spec: dict[str, Any]) -> str:
    """A short name for the recipe in `conversion_path`: the name, the file, or 'rules'."""
    head = spec.get("recipe") or (Path(spec["recipe_file"]).name if spec.get("recipe_file") else "")
    rules = f"{len(spec['rules'])} rule{'s' if len(spec['rules']) != 1 else ''}" if spec.get("rules") else ""
    return "+".join(p for p in (head, rules) if p)
