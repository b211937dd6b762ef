"""User prompt files: every format, and every way they can be wrong."""

from __future__ import annotations

import json

import pytest

from imgbench.api.specs import PromptSource
from imgbench.errors import UserError
from imgbench.prompts import content_sha256, read_prompt_file


def test_txt_one_prompt_a_line_ids_are_row_indices(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a red cube\n\na blue ball\r\n")
    prompts = read_prompt_file(path)
    assert [(p.id, p.text) for p in prompts] == [("0", "a red cube"), ("1", "a blue ball")]


def test_csv_and_tsv_with_columns(tmp_path):
    (tmp_path / "p.csv").write_text('caption,category,id\n"a cat, sleeping",Animals & Pets,c1\na dog,Animals,c2\n')
    source = PromptSource(text_column="caption", id_column="id", tag_columns=("category",))
    prompts = read_prompt_file(tmp_path / "p.csv", source)
    assert [(p.id, p.text, p.tags) for p in prompts] == [("c1", "a cat, sleeping", ("animals-pets",)),
                                                         ("c2", "a dog", ("animals",))]
    (tmp_path / "p.tsv").write_text("text\tcategory\na cat\tX\n")
    assert read_prompt_file(tmp_path / "p.tsv", PromptSource(tag_columns=("category",)))[0].tags == ("x",)


def test_jsonl_and_json(tmp_path):
    (tmp_path / "p.jsonl").write_text(json.dumps({"text": "one", "tags": ["A B", "c"]}) + "\n")
    assert read_prompt_file(tmp_path / "p.jsonl", PromptSource(tag_columns=("tags",)))[0].tags == ("a-b", "c")
    (tmp_path / "p.json").write_text(json.dumps(["first", "second"]))
    assert [p.text for p in read_prompt_file(tmp_path / "p.json")] == ["first", "second"]


def test_same_text_twice_is_two_prompts_and_checksum_ignores_file_layout(tmp_path):
    (tmp_path / "a.txt").write_text("same\nsame\n")
    (tmp_path / "b.txt").write_bytes(b"same\r\nsame")
    a, b = read_prompt_file(tmp_path / "a.txt"), read_prompt_file(tmp_path / "b.txt")
    assert len(a) == 2 and content_sha256(a) == content_sha256(b)
    (tmp_path / "c.txt").write_text("same\nsame!\n")
    assert content_sha256(read_prompt_file(tmp_path / "c.txt")) != content_sha256(a)


@pytest.mark.parametrize("name, content, source, match", [
    ("p.csv", "caption\nx\n", PromptSource(), "no column 'text'.*'caption'.*--text-column"),
    ("p.csv", "text\nok\n\"  \"\n", PromptSource(), "row 1 has an empty prompt"),
    ("p.jsonl", '{"text": "a"}\n{bad\n', PromptSource(), "p.jsonl:2: not valid JSON"),
    ("p.txt", "\n\n", PromptSource(), "no prompts found"),
    ("p.xml", "<a/>", PromptSource(), "unknown prompt file format 'xml'"),
    ("p.csv", "id,text\n1,a\n1,b\n", PromptSource(id_column="id"), "'1' appears more than once"),
    ("p.csv", "id,text\na/b,x\n", PromptSource(id_column="id"), "must not contain '/'"),
])
def test_bad_prompt_files(tmp_path, name, content, source, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=match):
        read_prompt_file(tmp_path / name, source)


def test_missing_file_says_so(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_prompt_file(tmp_path / "nope.txt")
