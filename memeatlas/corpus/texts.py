"""The text of a meme that a text space embeds: chosen annotation fields, or a template.

Fields are core annotation columns (description, ocr_text, intent, template, tone, entities)
or any other key of the annotation's `raw` JSON (user-defined schema fields). Entities render
as `name (role): stands_for`, joined with `; `. Several fields join one per line; a template
(`"{description} Meaning: {intent}"`) places them itself. A meme whose selected fields are all
empty has no text and is skipped.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from memeatlas.errors import InputError, NotFoundError
from memeatlas.provenance import short_hash

#: Annotation fields a text space can be built from (core columns of `annotations`).
#: Any other name is looked up in the annotation's `raw` JSON (user-defined schema fields).
CORE_FIELDS: tuple[str, ...] = ("description", "ocr_text", "intent", "template", "tone", "entities")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FIELD_SEPARATOR = "\n"
ENTITY_SEPARATOR = "; "


def parse_fields(fields: str | Iterable[str]) -> tuple[str, ...]:
    """`"description,intent"` or a list → validated, de-duplicated field names in order."""
    items = fields.split(",") if isinstance(fields, str) else list(fields)
    out: list[str] = []
    for f in (x.strip() for x in items):
        if not f:
            continue
        if not _NAME.match(f):
            raise InputError(f"bad field name {f!r}: use annotation field names such as "
                             f"{', '.join(CORE_FIELDS)} (letters, digits, _)")
        if f not in out:
            out.append(f)
    if not out:
        raise InputError(f"no fields given; choose from {', '.join(CORE_FIELDS)} "
                         f"or fields of your own schema")
    return tuple(out)


def template_fields(template: str) -> tuple[str, ...]:
    """The `{field}` names a template uses, in order of first use."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InputError(f"bad --template {template!r}: {exc} (write literal braces as {{{{ }}}})"
                         ) from None
    names: list[str] = []
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if not name or not _NAME.match(name):
            raise InputError(f"bad placeholder {{{name}}} in --template: use {{field}} with an "
                             f"annotation field name such as {{description}}")
        if spec or conv:
            raise InputError(f"placeholder {{{name}}} in --template has a format spec or "
                             f"conversion; use plain {{{name}}}")
        if name not in names:
            names.append(name)
    if not names:
        raise InputError("--template has no {field} placeholder, so every meme would get the "
                         "same text")
    return tuple(names)


def default_space_name(fields: Sequence[str], template: str | None = None) -> str:
    """`text:description+intent`, or `text:template-<hash of the template>`."""
    if template:
        return f"text:template-{short_hash(template, 8)}"
    return "text:" + "+".join(fields)


def render_entities(value: Any) -> str:
    """Entities (JSON text or list of dicts) → `name (role): stands_for; …`."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return ""
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value  # not JSON: embed what is there rather than lose it
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return render_value(value)
    parts = []
    for ent in value:
        if not isinstance(ent, dict):
            s = render_value(ent)
            if s:
                parts.append(s)
            continue
        name = render_value(ent.get("name"))
        role = render_value(ent.get("role"))
        stands = render_value(ent.get("stands_for"))
        s = name
        if role:
            s = f"{s} ({role})" if s else f"({role})"
        if stands:
            s = f"{s}: {stands}" if s else stands
        if s:
            parts.append(s)
    return ENTITY_SEPARATOR.join(parts)


def render_value(value: Any) -> str:
    """A field value as text: strings stripped, lists joined with `; `, objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return ENTITY_SEPARATOR.join(s for s in (render_value(v) for v in value) if s)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def render_field(name: str, row: dict[str, Any]) -> str:
    """One field of an annotation row (core column, else a key of `raw`) as text."""
    if name == "entities":
        return render_entities(row.get("entities"))
    if name in CORE_FIELDS:
        return render_value(row.get(name))
    raw = row.get("_raw")
    if raw is None:
        raw_text = row.get("raw")
        try:
            raw = json.loads(raw_text) if isinstance(raw_text, str) and raw_text else {}
        except json.JSONDecodeError:
            raw = {}
        row["_raw"] = raw
    if not isinstance(raw, dict):
        return ""
    if name.endswith("entities") and isinstance(raw.get(name), list):
        return render_entities(raw.get(name))
    return render_value(raw.get(name))


def build_text(row: dict[str, Any], fields: Sequence[str], template: str | None = None) -> str:
    """The text of one annotation row; "" when every selected field is empty."""
    if template:
        names = template_fields(template)
        values = {n: render_field(n, row) for n in names}
        if not any(values.values()):
            return ""
        return template.format_map(values).strip()
    parts = [render_field(f, row) for f in fields]
    return FIELD_SEPARATOR.join(p for p in parts if p)


# --- selecting annotations -------------------------------------------------------------------

def _nonempty_sql(field: str) -> str:
    """SQL that is true when an annotation has a non-empty value for `field` (name validated)."""
    if field == "entities":
        return "coalesce(json_array_length(entities), 0) > 0"
    if field in CORE_FIELDS:
        return f"coalesce(trim({field}), '') <> ''"
    return (f"coalesce(trim(json_extract_string(raw, '$.\"{field}\"')), '') "
            f"NOT IN ('', '[]', '{{}}', 'null')")


def _id_filter(meme_ids: Sequence[str] | None) -> tuple[str, list[Any]]:
    if meme_ids is None:
        return "", []
    return " AND meme_id IN (SELECT unnest(?::VARCHAR[]))", [list(meme_ids)]


def annotator_counts(store, fields: Sequence[str], meme_ids: Sequence[str] | None = None
                     ) -> list[tuple[str, int, int]]:
    """(annotator, memes annotated, memes with a non-empty selected field), most first."""
    any_nonempty = " OR ".join(_nonempty_sql(f) for f in fields)
    id_sql, params = _id_filter(meme_ids)
    return [(a, int(n), int(k)) for a, n, k in store.fetchall(
        f"SELECT annotator, count(*) AS n, count(*) FILTER (WHERE {any_nonempty}) AS k "
        f"FROM latest_annotations WHERE true{id_sql} GROUP BY annotator ORDER BY k DESC, annotator",
        params)]


def choose_annotator(store, fields: Sequence[str], annotator: str | None,
                     meme_ids: Sequence[str] | None = None) -> str:
    """The annotator whose annotations are embedded.

    Given one: it must have annotations. None: the only annotator whose annotations have any
    of the fields; several → InputError listing them with counts, so the choice is explicit.
    """
    counts = annotator_counts(store, fields, meme_ids)
    if not counts:
        raise NotFoundError("no annotations in this database; run `memeatlas caption` or "
                            "import annotations first")
    listing = ", ".join(f"{a} ({k} of {n} memes with {'/'.join(fields)})" for a, n, k in counts)
    if annotator is not None:
        if annotator not in {a for a, _, _ in counts}:
            raise NotFoundError(f"no annotations by annotator {annotator!r}; annotators here: "
                                f"{listing}")
        return annotator
    useful = [a for a, _, k in counts if k > 0]
    if len(useful) == 1:
        return useful[0]
    if not useful:
        raise InputError(f"no annotation has a non-empty {' or '.join(fields)}; annotators "
                         f"here: {listing}. Choose other --fields")
    raise InputError(f"several annotators have {'/'.join(fields)}: {listing}. "
                     f"Pass --annotator to choose one")


def check_fields_known(store, fields: Sequence[str], annotator: str) -> None:
    """Refuse a non-core field that no annotation of `annotator` has in its raw JSON."""
    for f in fields:
        if f in CORE_FIELDS:
            continue
        n = store.scalar(
            f"SELECT count(*) FROM latest_annotations WHERE annotator = ? AND "
            f"json_extract(raw, '$.\"{f}\"') IS NOT NULL", [annotator])
        if not n:
            raise InputError(f"field {f!r} is neither a core annotation field "
                             f"({', '.join(CORE_FIELDS)}) nor a key of any {annotator} "
                             f"annotation's raw JSON")


def text_recipe(store, cfg) -> tuple[tuple[str, ...], str, str]:
    """(fields, annotator, default space name) of a text-embedding config: the fields (or the
    template's placeholders), the annotator whose text is embedded (checked to have them), and
    the space name the recipe gets when `cfg.space` names none."""
    fields = template_fields(cfg.template) if cfg.template else parse_fields(cfg.fields)
    annotator = choose_annotator(store, fields, cfg.annotator, cfg.meme_ids)
    check_fields_known(store, fields, annotator)
    return fields, annotator, default_space_name(fields, cfg.template)


def annotation_texts(store, annotator: str, fields: Sequence[str], template: str | None = None,
                     meme_ids: Sequence[str] | None = None, limit: int | None = None
                     ) -> tuple[list[tuple[str, str]], int]:
    """[(meme_id, text)] for the annotator's newest annotation of each meme (text may be "").

    Also returns how many selected memes have no annotation by that annotator.
    """
    names = template_fields(template) if template else tuple(fields)
    cols = sorted({n for n in names if n in CORE_FIELDS})
    need_raw = any(n not in CORE_FIELDS for n in names)
    select = ", ".join(["meme_id", *cols, *(["raw"] if need_raw else [])])
    id_sql, params = _id_filter(meme_ids)
    lim = f" LIMIT {int(limit)}" if limit else ""
    cur = store.execute(
        f"SELECT {select} FROM latest_annotations WHERE annotator = ?{id_sql} "
        f"ORDER BY meme_id{lim}", [annotator, *params])
    keys = [d[0] for d in cur.description]
    out = []
    for r in cur.fetchall():
        row = dict(zip(keys, r, strict=True))
        out.append((row["meme_id"], build_text(row, fields, template)))
    if meme_ids is not None:
        missing = len(set(meme_ids)) - len(out)
    else:
        missing = int(store.scalar("SELECT count(*) FROM memes WHERE meme_id NOT IN "
                                   "(SELECT meme_id FROM latest_annotations WHERE annotator = ?)",
                                   [annotator]))
        if limit:
            missing = 0
    return out, max(0, missing)


def iter_annotation_texts(store, annotator: str, fields: Sequence[str], *, block: int = 50_000
                          ) -> Iterator[list[tuple[str, str]]]:
    """[(meme_id, text)] blocks of the annotator's newest annotation of each meme, in no
    particular order, streamed from DuckDB (a search-index build over 10⁶ memes never holds
    every text as Python strings at once). Texts are built as by `annotation_texts`."""
    cols = sorted({n for n in fields if n in CORE_FIELDS})
    need_raw = any(n not in CORE_FIELDS for n in fields)
    select = ", ".join(["meme_id", *cols, *(["raw"] if need_raw else [])])
    cur = store.con.cursor()  # its own result: the store's connection may hold another
    try:
        cur.execute(f"SELECT {select} FROM latest_annotations WHERE annotator = ?", [annotator])
        keys = [d[0] for d in cur.description]
        while rows := cur.fetchmany(block):
            yield [(r[0], build_text(dict(zip(keys, r, strict=True)), fields)) for r in rows]
    finally:
        cur.close()
