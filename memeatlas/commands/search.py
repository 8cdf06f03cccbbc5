"""`memeatlas search`: thin command over memeatlas.search; also adds search() to `sql`."""

from __future__ import annotations

from typing import Annotated

import typer

from memeatlas.commands.common import DbOption, echo_err, open_store

SEARCH_FORMATS = ("table", "csv", "json", "ids")


def search_cmd(
    query: Annotated[str | None, typer.Argument(
        help="Words or a phrase to search for (or give --like).")] = None,
    like: Annotated[str | None, typer.Option(
        "--like", help="Find memes like this one: a meme id, a source id, or an image file "
                       "(embedded with the image space's model).")] = None,
    mode: Annotated[str, typer.Option(
        "--mode", help="semantic (by meaning) | lexical (BM25 over annotation text) | hybrid "
                       "(both, rank-fused) [default: hybrid where both exist].")] = "auto",
    space: Annotated[str | None, typer.Option(
        "--space", help="Embedding space to search [default: the text space, plus every "
                        "CLIP-type image space for a text query].")] = None,
    fields: Annotated[str | None, typer.Option(
        "--fields", help="Annotation fields BM25 reads and hits show, comma-separated "
                         "[default: description,ocr_text,intent,template,tone,entities].")] = None,
    annotator: Annotated[str | None, typer.Option(
        "--annotator", help="Whose annotations to search by words [default: the text "
                            "space's, or the only annotator].")] = None,
    k: Annotated[int, typer.Option("-k", help="Number of hits (1 to 10,000).")] = 20,
    where: Annotated[str | None, typer.Option(
        "--where", help="Only memes matching this condition on memes (alias m), e.g. "
                        "\"m.source = 'memecap'\".")] = None,
    run: Annotated[str | None, typer.Option(
        "--run", help="Show each hit's cluster, label and membership in this cluster run.")] = None,
    fmt: Annotated[str, typer.Option(
        "--format", "-f", help="table | csv | json | ids (one meme_id per line, with a "
                               "header: what export --ids, curate move --memes-file and "
                               "report --ids read).")] = "table",
    index: Annotated[str, typer.Option(
        "--index", help="Vector index: auto (approximate HNSW above 200,000 vectors) | exact "
                        "| usearch.")] = "auto",
    max_width: Annotated[int, typer.Option(
        "--max-width", help="Cut table cells at this many characters (0: never).")] = 80,
    db: DbOption = None,
) -> None:
    """Find memes by meaning, by words, or by example; results go to stdout.

    The index (beside the store, in <db>.search/) is built on first use and brought up to
    date with the store before every search: added, changed and removed memes are applied,
    a replaced space is re-indexed.
    """
    from memeatlas.corpus.texts import parse_fields
    from memeatlas.errors import InputError
    from memeatlas.output import write_rows
    from memeatlas.search.query import SearchRequest, check_request, hit_rows, search

    if fmt not in SEARCH_FORMATS:
        raise InputError(f"unknown --format {fmt!r}; use one of {', '.join(SEARCH_FORMATS)}")
    if max_width < 0:
        raise InputError("--max-width must be 0 or more")
    req = SearchRequest(query=query, like=like, mode=mode, space=space,
                        fields=parse_fields(fields) if fields is not None else None,
                        annotator=annotator, k=k, where=where, run=run, backend=index)
    check_request(req)
    with open_store(db, read_only=True) as store:
        res = search(store, req)
    for note in res.notes:
        echo_err(f"note: {note}")
    if fmt == "ids":
        typer.echo("meme_id")
        for h in res.hits:
            typer.echo(h.meme_id)
    else:
        cols, rows = hit_rows(res.hits, with_run=run is not None)
        write_rows(cols, rows, fmt, max_width=max_width or None)
    built = {k: v for k, v in res.index_updates.items() if v != "fresh"}
    extra = f"; index {', '.join(f'{k} {v}' for k, v in built.items())}" if built else ""
    what = res.mode if res.lists == ["lexical"] else f"{res.mode}: {', '.join(res.lists)}"
    echo_err(f"search ({what}): {len(res.hits)} hit"
             f"{'s' if len(res.hits) != 1 else ''} in {res.timings.get('total', 0):.2f}s{extra}")


def index_cmd(
    space: Annotated[list[str] | None, typer.Option(
        "--space", help="Space to index (repeatable) [default: every space].")] = None,
    index: Annotated[str, typer.Option(
        "--index", help="auto | exact | usearch (as for search).")] = "auto",
    rebuild: Annotated[bool, typer.Option(
        "--rebuild", help="Delete the store's search indexes first.")] = False,
    db: DbOption = None,
) -> None:
    """Build or update the search indexes ahead of time (search does it on first use)."""
    from memeatlas.commands.common import echo_summary
    from memeatlas.embed import list_spaces
    from memeatlas.search.indexes import index_root, open_vectors, remove_all
    from memeatlas.search.vectors import check_backend

    check_backend(index)
    with open_store(db, read_only=True) as store:
        if rebuild:
            remove_all(store)
        names = space or [s.space for s in list_spaces(store) if s.n > 0]
        done = {}
        for name in names:
            v = open_vectors(store, name, backend=index)
            done[name] = (f"{v.update.action}, {len(v.pos):,} vectors, {v.backend}"
                          + (f", {v.update.seconds:.1f}s" if v.update.action != "fresh" else ""))
        echo_summary(f"search index: {index_root(store)}", done or {"spaces": "none"})


def register(app: typer.Typer) -> None:
    """Add `search` to the root app, and search()/similarity() to `memeatlas sql`."""
    from memeatlas.search.sql import install
    from memeatlas.store.sandbox import add_sql_functions

    app.command("search")(search_cmd)
    app.command("search-index")(index_cmd)
    add_sql_functions(install)

