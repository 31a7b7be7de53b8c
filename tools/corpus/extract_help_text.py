#!/usr/bin/env python3
"""Extract Korean paragraphs from LibreOffice help pages (HTML or XHP) into a train/val corpus.

Usage: extract_help_text.py HELP_ROOT OUTDIR --package NAME --version VERSION [--deb-sha256 HEX]

Contract (standard library only; deterministic: same pages give the same bytes):
  * pages: every *.html and *.xhp file under HELP_ROOT, sorted by their POSIX path relative to
    HELP_ROOT; in HTML only the help body (<div id="DisplayArea">) is read, in XHP the <body>.
  * paragraphs: the text of each block element (p, h1-h6, li, td, th, dt, dd, pre, ...); a nested
    block ends the paragraph around it; script/style/navigation/bookmark text is skipped.
    Character references are decoded, runs of whitespace collapse to one space, ends are trimmed.
  * kept: paragraphs that contain at least one Hangul letter (syllables U+AC00-U+D7A3, Jamo
    U+1100-U+11FF, compatibility Jamo U+3130-U+318F); exact duplicates are dropped, keeping the
    first occurrence in page order (so no validation paragraph repeats a training one).
  * split: a page goes to validation when int(sha256(relative path), 16) % 20 == 0 (about 5%),
    else to training; the split is by page so that one page's paragraphs stay together.
  * output: OUTDIR/ko_train.txt and OUTDIR/ko_val.txt, paragraphs separated by one blank line and
    the file ending in a newline (each paragraph is one `ssiat data prepare` document), plus
    OUTDIR/SOURCE.md. Files are written to temporaries and renamed into place.
"""

import argparse
import hashlib
import os
import re
import sys
from html.parser import HTMLParser

BLOCK_TAGS = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "td", "th", "dt", "dd", "pre", "blockquote",
    "caption", "div", "tr", "table", "ul", "ol", "dl", "section", "article", "figcaption",
    # XHP (LibreOffice help XML)
    "paragraph", "title", "tablecell", "tablerow", "list", "listitem",
}
SKIP_TAGS = {
    "script", "style", "noscript", "head", "button", "nav", "header", "aside", "footer", "select",
    "option", "svg", "math", "template",
    # XHP: index keywords, comments
    "bookmark_value", "comment", "history", "sort",
}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
             "source", "track", "wbr"}
HANGUL = re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
WHITESPACE = re.compile(r"\s+")
VAL_MODULUS = 20


class HelpTextParser(HTMLParser):
    """Collects block-level paragraphs of one help page's body."""

    def __init__(self, xhp):
        super().__init__(convert_charrefs=True)
        self.xhp = xhp
        self.paragraphs = []
        self.buf = []
        self.body_depth = 0  # > 0 while inside the help body (nesting of its own element kind)
        self.body_tag = "body" if xhp else "div"
        self.skip_depth = 0

    def _flush(self):
        text = WHITESPACE.sub(" ", "".join(self.buf)).strip()
        self.buf = []
        if text:
            self.paragraphs.append(text)

    def handle_starttag(self, tag, attrs):
        if self.body_depth == 0:
            if tag == self.body_tag and (self.xhp or dict(attrs).get("id") == "DisplayArea"):
                self.body_depth = 1
            return
        if tag == self.body_tag:
            self.body_depth += 1
        if tag in VOID_TAGS:
            if tag == "br" and self.skip_depth == 0:
                self.buf.append(" ")
            return
        if tag in SKIP_TAGS:
            self.skip_depth += 1
        elif tag in BLOCK_TAGS and self.skip_depth == 0:
            self._flush()

    def handle_startendtag(self, tag, attrs):
        if self.body_depth > 0 and tag == "br" and self.skip_depth == 0:
            self.buf.append(" ")

    def handle_endtag(self, tag):
        if self.body_depth == 0:
            return
        if tag in SKIP_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in BLOCK_TAGS and self.skip_depth == 0:
            self._flush()
        if tag == self.body_tag:
            self.body_depth -= 1
            if self.body_depth == 0:
                self._flush()

    def handle_data(self, data):
        if self.body_depth > 0 and self.skip_depth == 0:
            self.buf.append(data)

    def close(self):
        super().close()
        self._flush()


def page_paragraphs(path, xhp):
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    parser = HelpTextParser(xhp)
    parser.feed(text)
    parser.close()
    return parser.paragraphs


def list_pages(root):
    pages = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(".html") or name.endswith(".xhp"):
                full = os.path.join(dirpath, name)
                pages.append(os.path.relpath(full, root).replace(os.sep, "/"))
    return sorted(pages)


def is_val(rel):
    return int(hashlib.sha256(rel.encode("utf-8")).hexdigest(), 16) % VAL_MODULUS == 0


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("help_root")
    ap.add_argument("outdir")
    ap.add_argument("--package", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--deb-sha256", default="")
    args = ap.parse_args()

    pages = list_pages(args.help_root)
    if not pages:
        sys.exit(f"extract_help_text: no .html/.xhp pages under {args.help_root}")
    seen = set()
    out = {"train": [], "val": []}
    pages_used = {"train": 0, "val": 0}
    total = 0
    for rel in pages:
        paras = page_paragraphs(os.path.join(args.help_root, rel), rel.endswith(".xhp"))
        total += len(paras)
        split = "val" if is_val(rel) else "train"
        kept = 0
        for p in paras:
            if p in seen or not HANGUL.search(p):
                continue
            seen.add(p)
            out[split].append(p)
            kept += 1
        pages_used[split] += kept > 0

    os.makedirs(args.outdir, exist_ok=True)
    sizes = {}
    for split in ("train", "val"):
        if not out[split]:
            sys.exit(f"extract_help_text: no Korean paragraphs for {split}")
        data = ("\n\n".join(out[split]) + "\n").encode("utf-8")
        write_atomic(os.path.join(args.outdir, f"ko_{split}.txt"), data)
        sizes[split] = (len(data), len(out[split]), hashlib.sha256(data).hexdigest())

    source = f"""# Korean corpus: LibreOffice help (Korean)

- Debian package: `{args.package}`, version `{args.version}`{f", .deb SHA-256 `{args.deb_sha256}`" if args.deb_sha256 else ""}
- License: MPL-2.0 (LibreOffice; see /usr/share/doc/{args.package}/copyright in the package;
  some files incorporate Apache-2.0 material)
- Made by `tools/corpus/fetch_ko_help.sh` with `tools/corpus/extract_help_text.py`: {len(pages)}
  help pages read in path order, {total} paragraphs found, paragraphs with Hangul kept, exact
  duplicates dropped; pages with int(sha256(path), 16) % {VAL_MODULUS} == 0 go to validation.

| file | bytes | paragraphs | pages | sha256 |
|---|---|---|---|---|
| ko_train.txt | {sizes["train"][0]} | {sizes["train"][1]} | {pages_used["train"]} | `{sizes["train"][2]}` |
| ko_val.txt | {sizes["val"][0]} | {sizes["val"][1]} | {pages_used["val"]} | `{sizes["val"][2]}` |
"""
    write_atomic(os.path.join(args.outdir, "SOURCE.md"), source.encode("utf-8"))
    for split in ("train", "val"):
        print(f"ko_{split}.txt: {sizes[split][0]} bytes, {sizes[split][1]} paragraphs")


if __name__ == "__main__":
    main()
