#!/usr/bin/env python3
"""export_assembly_bills.py DATA_DIR OUT_DIR — bill texts of PyPI's korean-assembly-bills as text.

Reads DATA_DIR/bills.parquet (metadata) and DATA_DIR/bill_texts.parquet (propose-reason texts,
column `propose_reason`) from the package's sdist and writes, in OUT_DIR:
  bills_train.txt, bills_heldout.txt   one document per bill (title line, then the text's lines),
                                       documents separated by one blank line (what
                                       `ssiat data prepare` reads: docs/data.md)
  bills_train_lines.txt, bills_heldout_lines.txt   with --lines: the same lines without the blank
                                       separators, one line per source line (what spm_train reads)
  SOURCE.md                            package, version, license, digest, counts
Contract: the output is a pure function of the two parquet files. Bills are ordered by
(AGE, BILL_NO, BILL_ID); bills without text are dropped; exact duplicate texts are dropped after
their first occurrence (so held-out text never repeats a training bill verbatim) unless
--keep-duplicates; then every Nth remaining bill (index % N == N - 1, N = --heldout-every) is
held out. Text is NFC-normalised, tabs become spaces, lines are stripped and empty lines dropped.
Every output is written as UTF-8 and re-read with strict decoding before it is reported.
Needs pyarrow.
"""
import argparse
import hashlib
import sys
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq


def clean_lines(text):
    """Non-empty, stripped, NFC lines of one text; tabs become spaces."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return [ln.replace("\t", " ").strip() for ln in text.split("\n") if ln.strip()]


def load_bills(data_dir):
    """[(sort_key, title, text)] for every bill with non-empty text, in (AGE, BILL_NO, ID) order."""
    meta = pq.read_table(data_dir / "bills.parquet",
                         columns=["BILL_ID", "BILL_NO", "BILL_NAME", "AGE"]).to_pylist()
    texts = pq.read_table(data_dir / "bill_texts.parquet",
                          columns=["BILL_ID", "propose_reason"]).to_pylist()
    by_id = {r["BILL_ID"]: r["propose_reason"] for r in texts}
    bills = []
    for m in meta:
        text = by_id.get(m["BILL_ID"])
        if not text or not text.strip():
            continue
        key = (int(m["AGE"] or 0), int(m["BILL_NO"] or 0), m["BILL_ID"])
        bills.append((key, (m["BILL_NAME"] or "").strip(), text))
    bills.sort(key=lambda b: b[0])
    return bills, len(meta)


def to_documents(bills, keep_duplicates, with_title):
    """[[line, ...]] per bill; drops exact duplicate texts (after cleaning) unless asked not to."""
    seen, docs, dups = set(), [], 0
    for _, title, text in bills:
        lines = clean_lines(text)
        if not lines:
            continue
        digest = hashlib.sha1("\n".join(lines).encode()).digest()
        if digest in seen and not keep_duplicates:
            dups += 1
            continue
        seen.add(digest)
        head = clean_lines(title) if with_title else []
        docs.append(head + lines)
    return docs, dups


def write_docs(path, docs, blank_between):
    """Writes docs' lines; a blank line between documents when blank_between."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for i, doc in enumerate(docs):
            if blank_between and i:
                f.write("\n")
            f.write("\n".join(doc))
            f.write("\n")


def describe(path):
    """(bytes, lines, chars, hangul_syllables) of a file, decoding it strictly as UTF-8."""
    data = path.read_bytes()
    text = data.decode("utf-8", errors="strict")
    hangul = sum(1 for c in text if "\uac00" <= c <= "\ud7a3")
    return len(data), text.count("\n"), len(text), hangul


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--heldout-every", type=int, default=20)
    ap.add_argument("--lines", action="store_true", help="also write *_lines.txt")
    ap.add_argument("--keep-duplicates", action="store_true")
    ap.add_argument("--no-title", action="store_true", help="omit the bill-name line")
    ap.add_argument("--package", default="korean-assembly-bills")
    ap.add_argument("--version", default="?")
    ap.add_argument("--sdist-sha256", default="?")
    a = ap.parse_args()
    if a.heldout_every < 2:
        sys.exit("export_assembly_bills: --heldout-every must be >= 2")

    bills, n_meta = load_bills(a.data_dir)
    docs, dups = to_documents(bills, a.keep_duplicates, not a.no_title)
    n = a.heldout_every
    split = {"train": [d for i, d in enumerate(docs) if i % n != n - 1],
             "heldout": [d for i, d in enumerate(docs) if i % n == n - 1]}
    a.out_dir.mkdir(parents=True, exist_ok=True)
    report = []
    for name, part in split.items():
        outs = [(a.out_dir / f"bills_{name}.txt", True)]
        if a.lines:
            outs.append((a.out_dir / f"bills_{name}_lines.txt", False))
        for path, blank in outs:
            write_docs(path, part, blank)
            size, lines, chars, hangul = describe(path)
            report.append((path.name, len(part), size, lines, chars, hangul))
            print(f"{path}: {len(part)} bills, {size / 1e6:.1f} MB, {lines} lines, "
                  f"{chars} chars, Hangul syllables {100.0 * hangul / max(chars, 1):.1f}% of chars")
    write_source(a, n_meta, len(bills), dups, len(docs), report)


def write_source(a, n_meta, n_text, dups, n_docs, report):
    """OUT_DIR/SOURCE.md: provenance and the numbers printed above."""
    rows = "\n".join(f"| {f} | {b} | {s} | {ln} | {c} | {100.0 * h / max(c, 1):.1f}% |"
                     for f, b, s, ln, c, h in report)
    (a.out_dir / "SOURCE.md").write_text(f"""# Korean National Assembly bills corpus

- Source: PyPI `{a.package}` {a.version} sdist (files `data/bills.parquet`,
  `data/bill_texts.parquet`), sha256 `{a.sdist_sha256}`
- License: CC-BY-4.0 (Kyusik Yang, https://github.com/kyusik-yang/korean-assembly-bills)
- Text: the propose-reason (제안이유) of each member-proposed bill, 20th-22nd Assembly,
  preceded by the bill name{' (omitted: --no-title)' if a.no_title else ''}
- Bills: {n_meta} in the metadata, {n_text} with text, {dups} exact duplicate texts
  {'kept (--keep-duplicates)' if a.keep_duplicates else 'dropped'}, {n_docs} written
- Order: (AGE, BILL_NO, BILL_ID); every {a.heldout_every}th bill held out
- Written by tools/corpus/export_assembly_bills.py

| file | bills | bytes | lines | chars | Hangul syllables |
|---|---|---|---|---|---|
{rows}
""", encoding="utf-8")


if __name__ == "__main__":
    main()
