"""Text data: the synthetic clinical notes, CSV/JSONL files, group-aware splits, and every bad
input failing in one line from the CLI before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hackforge_edge.cli import main
from hackforge_edge.data import text_synthetic
from hackforge_edge.data.text_files import read_text_table
from hackforge_edge.data.text_loader import load_text_dataset
from hackforge_edge.data.text_preprocess import TextPreprocess, train_wordpiece


def test_synthetic_notes_are_seeded_balanced_and_domains_differ():
    a, ya = text_synthetic.generate(101, domain="target", seed=3)
    b, yb = text_synthetic.generate(101, domain="target", seed=3)
    assert a == b and np.array_equal(ya, yb)
    assert abs(int(ya.sum()) - 50) <= 1
    assert text_synthetic.generate(101, domain="target", seed=4)[0] != a
    src, _ = text_synthetic.generate(200, domain="source", seed=0)
    tgt, _ = text_synthetic.generate(200, domain="target", seed=0)
    # abbreviations in the ED notes, letter style in the GP letters
    assert sum("c/o" in t or "PC:" in t for t in src) == 200 and sum("c/o" in t for t in tgt) == 0
    assert sum(t.startswith(("Dear", "Re:")) for t in tgt) == 200
    assert np.mean([len(t.split()) for t in tgt]) > 1.5 * np.mean([len(t.split()) for t in src])


def test_no_single_word_decides_the_label():
    texts, y = text_synthetic.generate(600, domain="target", seed=1)
    bags = [set(t.lower().split()) for t in texts]
    seen: dict[str, list[int]] = {}
    for bag, lab in zip(bags, y):
        for w in bag:
            seen.setdefault(w, []).append(int(lab))
    best = max(abs(np.mean(labs) - 0.5) for labs in seen.values() if len(labs) >= 60)
    assert best < 0.45  # every frequent word appears with both labels


def _pre(texts):
    return TextPreprocess(train_wordpiece(texts, 300), max_length=32)


def test_csv_with_groups_keeps_each_patient_in_one_split(tmp_path):
    texts, y = text_synthetic.generate(120, domain="target", seed=0)
    path = tmp_path / "notes.csv"
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["note", "triage", "patient"])
        for i, (t, lab) in enumerate(zip(texts, y)):
            w.writerow([t, ["routine", "urgent"][lab], f"p{i // 3}"])
    splits = load_text_dataset(str(path), make_preprocess=_pre, seed=0, text_column="note",
                               label_column="triage", group_column="patient", data_fraction=0.5)
    assert splits.class_names == ["routine", "urgent"]
    patients = {s: {int(n.split("-")[1]) // 3 for n in getattr(splits, s).names} for s in ("train", "val", "test")}
    assert not (patients["train"] & patients["test"]) and not (patients["val"] & patients["test"])
    assert splits.description["group_column"] == "patient"
    assert splits.description["train_texts_before_fraction"] > len(splits.train)
    feed = splits.preprocess.encode(splits.train.texts[:3])
    assert feed["input_ids"].dtype == np.int64 and feed["input_ids"].shape == feed["attention_mask"].shape


def test_jsonl_reads_int_labels_as_classes(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"note {i}", "label": i % 3}) for i in range(9)) + "\n")
    table = read_text_table(path)
    assert sorted(set(table.labels)) == ["0", "1", "2"] and len(table.texts) == 9


BAD = {
    "missing_text.csv": ("body,label\nhello,a\nbye,b\n", "no 'text' column (columns: body, label)"),
    "missing_label.jsonl": ('{"text": "a", "y": 1}\n', "no 'label' column"),
    "empty.csv": ("", "empty file"),
    "header_only.csv": ("text,label\n", "empty file"),
    "empty_text.csv": ("text,label\nfine,a\n   ,b\n", "row on line 3: empty text"),
    "number_text.jsonl": ('{"text": "ok", "label": "a"}\n{"text": 5, "label": "b"}\n',
                          "line 2: text is a int, not a string"),
    "null_text.jsonl": ('{"text": null, "label": "a"}\n', "line 1: text is missing"),
    "one_class.csv": ("text,label\na,x\nb,x\n", "only one class ('x')"),
    "not_json.jsonl": ('{"text": "a", "label": 1}\n{oops\n', "line 2 is not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_text_files_are_one_line_before_any_work(tmp_path, capsys, name):
    content, message = BAD[name]
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "run"
    code = main(["train-and-export", "--model", "tinybert", "--data", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0], lines[0]
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--data", "NOTES.bin"], "not UTF-8 text (byte 0xff"),
    (["--model", "MODELDIR"], "no tokenizer in the directory"),
    (["--data", "/nonexistent/notes.csv"], "no such file"),
    (["--data", "/nonexistent/imagefolder"], "text data is a .csv or .jsonl file"),
    (["--weights", "imagenet"], "--weights for a text model must be one of pretrained, none"),
    (["--variants", "int4"], "unknown variant"),
    (["--max-length", "4"], "--max-length must be >= 8"),
    (["--task", "audio"], "--task must be one of image, text"),
])
def test_bad_text_settings_are_one_line(tmp_path, capsys, args, message):
    bad = tmp_path / "notes.csv"
    bad.write_bytes(b"text,label\n\xff\xfe broken,a\n")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "bert"}')
    args = [str(bad) if a == "NOTES.bin" else str(model_dir) if a == "MODELDIR" else a for a in args]
    out = tmp_path / "run"
    code = main(["train-and-export", "--task", "text", "--model", "tinybert", "--out", str(out), "--quiet", *args])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not out.exists()


def test_task_is_inferred_from_the_model():
    from hackforge_edge.recipes.train_and_export import TrainExportConfig

    text = TrainExportConfig(model="tinybert")
    assert text.task == "text" and text.weights == "pretrained" and text.max_length == 128
    image = TrainExportConfig()
    assert image.task == "image" and image.model == "resnet18" and image.weights == "source"
    assert TrainExportConfig(task="text").model == "minilm-l6"
