"""Building texts from annotation fields and templates, and choosing the annotator (no model)."""

from __future__ import annotations

import pytest

from memeatlas.corpus import texts as T
from memeatlas.errors import InputError, NotFoundError
from tests.helpers_embed import add_annotation, add_meme, meme_id_for

ENTS = [{"name": "Drake", "role": "hero", "stands_for": "the poster"},
        {"name": "homework", "role": "villain", "stands_for": "obligations"},
        {"name": "cat", "role": "other"}]


def test_parse_fields_validates_and_dedups():
    assert T.parse_fields("description, intent,description") == ("description", "intent")
    assert T.parse_fields(["ocr_text"]) == ("ocr_text",)
    with pytest.raises(InputError, match="bad field name"):
        T.parse_fields("description;drop table")
    with pytest.raises(InputError, match="no fields"):
        T.parse_fields(" , ")


def test_template_fields_and_errors():
    assert T.template_fields("{description} Meaning: {intent} ({description})") == (
        "description", "intent")
    for bad in ("no placeholders", "{}", "{0}", "{a.b}", "{intent!r}", "{intent:>10}", "{oops"):
        with pytest.raises(InputError):
            T.template_fields(bad)


def test_render_entities_format():
    assert T.render_entities(ENTS) == ("Drake (hero): the poster; homework (villain): "
                                       "obligations; cat (other)")
    assert T.render_entities('[{"name": "x", "stands_for": "y"}]') == "x: y"
    assert T.render_entities(None) == "" and T.render_entities("[]") == ""


def test_build_text_fields_in_order_one_per_line_and_empty():
    row = {"description": " A man points. ", "intent": "Agreement", "ocr_text": "",
           "tone": None, "entities": ENTS}
    assert T.build_text(row, ("intent", "description")) == "Agreement\nA man points."
    assert T.build_text(row, ("ocr_text", "tone")) == ""
    assert T.build_text(row, ("entities",)).startswith("Drake (hero): the poster; ")


def test_build_text_template_and_raw_fields():
    row = {"description": "A dog", "intent": "", "raw": '{"topic": "pets", "tags": ["a", "b"]}'}
    assert T.build_text(row, (), "{description}. Meaning: {intent}") == "A dog. Meaning:"
    assert T.build_text(row, (), "About {topic}: {tags}") == "About pets: a; b"
    assert T.build_text({"description": "", "intent": None}, (), "Says {description}{intent}") == ""


def test_default_space_name():
    assert T.default_space_name(("description", "intent")) == "text:description+intent"
    name = T.default_space_name((), "{description}")
    assert name.startswith("text:template-") and name == T.default_space_name((), "{description}")


@pytest.fixture
def annotated(store):
    ids = [meme_id_for(f"m{i}") for i in range(4)]
    for i, m in enumerate(ids):
        add_meme(store, m, None, has_image=False)
        add_annotation(store, m, "vlm:a", description=f"desc {i}", intent=f"intent {i}",
                       ocr_text=f"text {i}", entities=ENTS[:1])
    for m in ids[:2]:  # OCR fills ocr_text only
        add_annotation(store, m, "ocr:rapidocr", prompt_hash="", schema_hash="",
                       ocr_text="OCR words")
    return store, ids


def test_choose_annotator_picks_the_only_one_with_the_fields(annotated):
    store, _ = annotated
    assert T.choose_annotator(store, ("description", "intent"), None) == "vlm:a"


def test_choose_annotator_refuses_ambiguity_listing_counts(annotated):
    store, _ = annotated
    with pytest.raises(InputError) as e:
        T.choose_annotator(store, ("ocr_text",), None)
    msg = str(e.value)
    assert "vlm:a (4 of 4" in msg and "ocr:rapidocr (2 of 2" in msg and "--annotator" in msg
    assert T.choose_annotator(store, ("ocr_text",), "ocr:rapidocr") == "ocr:rapidocr"
    with pytest.raises(NotFoundError, match="human:nobody"):
        T.choose_annotator(store, ("ocr_text",), "human:nobody")


def test_annotation_texts_uses_newest_annotation_and_counts_missing(annotated):
    store, ids = annotated
    add_annotation(store, ids[0], "vlm:a", prompt_hash="p2", description="newer desc",
                   intent="newer intent", created_at="2099-01-01 00:00:00")
    rows, missing = T.annotation_texts(store, "ocr:rapidocr", ("ocr_text",))
    assert len(rows) == 2 and missing == 2
    rows, missing = T.annotation_texts(store, "vlm:a", ("description", "intent"))
    assert dict(rows)[ids[0]] == "newer desc\nnewer intent" and missing == 0
    rows, _ = T.annotation_texts(store, "vlm:a", (), "{entities} | {ocr_text}")
    assert dict(rows)[ids[1]] == "Drake (hero): the poster | text 1"


def test_unknown_custom_field_is_refused(annotated):
    store, _ = annotated
    with pytest.raises(InputError, match="neither a core annotation field"):
        T.check_fields_known(store, ("nonexistent",), "vlm:a")


def test_annotation_texts_restricted_to_meme_ids_and_limit(annotated):
    store, ids = annotated
    rows, missing = T.annotation_texts(store, "ocr:rapidocr", ("ocr_text",),
                                       meme_ids=[ids[0], ids[3]])
    assert [m for m, _ in rows] == [ids[0]] and missing == 1
    rows, _ = T.annotation_texts(store, "vlm:a", ("description",), limit=2)
    assert len(rows) == 2
    assert T.choose_annotator(store, ("ocr_text",), None, meme_ids=[ids[3]]) == "vlm:a"


def test_importing_embed_api_and_commands_stays_light():
    import subprocess
    import sys

    code = ("import sys, memeatlas.embed as e, memeatlas.commands.embed; e.TextEmbedConfig; "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
