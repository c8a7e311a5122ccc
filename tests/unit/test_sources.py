import functools
import http.server
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from tagifai.sources import SourceError, conform, detect_format, read_input, read_source

DATA = Path(__file__).resolve().parents[2] / "data" / "madewithml"


@pytest.mark.parametrize(
    "uri,fmt",
    [
        ("a/projects.csv", "csv"),
        ("https://x/y/tags.CSV", "csv"),
        ("gs://b/p.parquet", "parquet"),
        ("p.jsonl", "json"),
        ("p.json.gz", "json"),
        ("p.csv.gz", "csv"),
    ],
)
def test_detect_format(uri, fmt):
    assert detect_format(uri) == fmt


def test_detect_format_unknown_names_the_source():
    with pytest.raises(SourceError, match=r"data\.xlsx.*\.xlsx"):
        detect_format("data.xlsx")


def test_reads_the_real_csvs_with_types():
    projects = read_source(str(DATA / "projects.csv"), "projects")
    tags = read_source(str(DATA / "tags.csv"), "tags")
    assert len(projects) == len(tags) == 764
    assert list(projects.columns) == ["id", "created_on", "title", "description"]
    assert str(projects["id"].dtype) == "int64"
    assert projects["created_on"].min() == pd.Timestamp("2020-02-20 06:43:18")
    assert projects["description"].str.contains("\n").any()  # quoted newlines survive


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet"])
def test_json_and_parquet_sources_match_csv(tmp_path, fmt):
    expected = read_source(str(DATA / "tags.csv"), "tags")
    path = tmp_path / f"tags.{fmt}"
    if fmt == "parquet":
        expected.to_parquet(path)
    else:
        expected.to_json(path, orient="records", lines=fmt == "jsonl")
    got = read_source(str(path), "tags")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))


def test_http_source_over_loopback(monkeypatch):
    from tagifai.sources import fingerprint

    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as in the sync image: fsspec's HTTP needs it, we must not
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DATA))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        df = read_source(f"http://127.0.0.1:{server.server_port}/tags.csv", "tags")
        assert len(df) == 764
        with pytest.raises(SourceError, match="missing.csv"):
            read_source(f"http://127.0.0.1:{server.server_port}/missing.csv", "tags")
        # the fingerprint of the bytes is the same over HTTP as on disk
        assert fingerprint(f"http://127.0.0.1:{server.server_port}/tags.csv") == fingerprint(str(DATA / "tags.csv"))
        with pytest.raises(SourceError, match="missing.csv: could not read its bytes"):
            fingerprint(f"http://127.0.0.1:{server.server_port}/missing.csv")
    finally:
        server.shutdown()


def _frame(**cols):
    return pd.DataFrame(cols)


def test_missing_column_names_file_and_column():
    with pytest.raises(SourceError, match=r"bad\.csv: missing column\(s\) tag .*found id"):
        conform(_frame(id=["1"]), "tags", "bad.csv")


def test_non_integer_id_names_row_and_value():
    with pytest.raises(SourceError, match=r"column 'id' is not an integer in data row\(s\) 2: 'x'"):
        conform(_frame(id=["1", "x"], tag=["a", "b"]), "tags", "t.csv")


def test_empty_id_names_row():
    with pytest.raises(SourceError, match=r"column 'id' is empty in data row\(s\) 1"):
        conform(_frame(id=[None, "2"], tag=["a", "b"]), "tags", "t.csv")


def test_duplicate_primary_key_is_rejected():
    with pytest.raises(SourceError, match=r"primary key 'id' is duplicated in data row\(s\) 1, 3 \(ids 7\)"):
        conform(_frame(id=["7", "8", "7"], tag=["a", "b", "c"]), "tags", "t.csv")


def test_bad_timestamp_names_row():
    df = _frame(id=["1", "2"], created_on=["2020-01-01", "yesterday"], title=["a", "b"], description=["c", "d"])
    with pytest.raises(SourceError, match=r"'created_on' is not a timestamp in data row\(s\) 2: 'yesterday'"):
        conform(df, "projects", "p.csv")


def test_missing_file_and_unreadable_file(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        read_source(str(tmp_path / "nope.csv"), "tags")
    bad = tmp_path / "tags.parquet"
    bad.write_text("not parquet")
    with pytest.raises(SourceError, match=r"tags\.parquet: could not read as parquet"):
        read_source(str(bad), "tags")


def test_empty_source_is_rejected(tmp_path):
    path = tmp_path / "tags.csv"
    path.write_text("id,tag\n")
    with pytest.raises(SourceError, match="no rows"):
        read_source(str(path), "tags")


# --------------------------------------------------------------------------- user input files (predict/evaluate)


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_read_input_sniffs_the_separator_and_keeps_commas_in_text(tmp_path, sep):
    frame = pd.DataFrame(
        {
            "title": ["YOLO, fast", "BERT"],
            "description": ["boxes; and masks", "a | b"],
            "tag": ["computer-vision", "natural-language-processing"],
        }
    )
    path = tmp_path / "in.csv"
    frame.to_csv(path, index=False, sep=sep)
    got = read_input(str(path), ("title", "description", "tag"))
    pd.testing.assert_frame_equal(got, frame)


def test_read_input_matches_headers_without_case_or_spaces_and_keeps_other_columns(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("\ufeff Title ,DESCRIPTION,Tag,note\r\nOCR,reads text,computer-vision,x\r\n", encoding="utf-8")
    got = read_input(str(path), ("title", "description", "tag"))
    assert list(got.columns) == ["title", "description", "tag", "note"]
    assert got.iloc[0].tolist() == ["OCR", "reads text", "computer-vision", "x"]


def test_read_input_fills_empty_text_and_rejects_empty_tags_by_row(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("title,description,tag\na,,mlops\nb,c,\nd,e,  \n")
    assert read_input(str(path), ("title", "description")).loc[0, "description"] == ""
    with pytest.raises(SourceError, match=r"in\.csv: column 'tag' is empty in data row\(s\) 2, 3"):
        read_input(str(path), ("title", "description", "tag"))


def test_read_input_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.csv"
    with pytest.raises(SourceError, match="missing.csv: no such file"):
        read_input(str(missing))
    header_only = tmp_path / "header.txt"  # no known extension: read as CSV
    header_only.write_text("title,description\n")
    with pytest.raises(SourceError, match="header.txt: no rows"):
        read_input(str(header_only))
    no_tag = tmp_path / "no_tag.csv"
    no_tag.write_text("title,description\na,b\n")
    with pytest.raises(
        SourceError,
        match="no_tag.csv: missing column.s. tag; expected title, description, tag, found title, description",
    ):
        read_input(str(no_tag), ("title", "description", "tag"))


def test_read_input_reads_parquet_and_json(tmp_path):
    frame = pd.DataFrame({"title": ["a"], "description": ["b"], "tag": ["mlops"]})
    frame.to_parquet(tmp_path / "in.parquet")
    frame.to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    for name in ("in.parquet", "in.jsonl"):
        pd.testing.assert_frame_equal(read_input(str(tmp_path / name), ("title", "description", "tag")), frame)
