"""Your own data, trusted (issue 16): the CSV reader, negatives, the encoder's arguments, rare
and unseen values, named columns, text labels and dtypes.

Table-driven: each case asserts the exit status (command line) or the exception type (library),
a one-line message that names the problem (file, line and column for data), no traceback, and
that every file in the case's folder (inputs, the saved model, outputs that existed) is unchanged.
"""
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from test_errors import assert_one_line_error, digest, run_cli

from nfm_numpy import checkpoint, cli, features as Fe
from nfm_numpy.errors import CheckpointError, DataError, OptionError, OptionTypeError

pd = pytest.importorskip("pandas")


# ------------------------------------------------------------------ files
def write(d, name, text):
    p = d / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def rows(header, make, n):
    return header + "\n" + "".join(make(i) + "\n" for i in range(n))


SHOP = rows("user,item,price,y", lambda i: f"u{i % 7},i{i % 5},{10 + i % 9},{(i * 37 % 11) / 10}", 100)
# three files: 'rare' is in the training rows once (rarer than --min-count 2), 'never' in none
TRAIN = rows("user,item,price,y", lambda i: f"u{i % 6},i{i % 4},{i % 9},{i % 3}", 60) + "rare,i1,3,1\n"
VALID = rows("user,item,price,y", lambda i: f"u{i % 6},i{i % 4},{i % 9},{i % 3}", 12)
YESNO = rows("user,item,bought", lambda i: f"u{i % 5},i{i % 4},{'yes' if i % 3 else 'no'}", 60)
THREE = rows("user,item,bought", lambda i: f"u{i % 5},i{i % 4},{('yes', 'no', 'maybe')[i % 3]}", 60)


def shop(d):
    return write(d, "shop.csv", SHOP)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained with --csv on three files, --min-count 2 (so 'rare' is a rare user)."""
    d = tmp_path_factory.mktemp("trust_csv")
    for name, text in (("train.csv", TRAIN), ("valid.csv", VALID), ("test.csv", VALID)):
        write(d, name, text)
    assert cli.main(["train", "--csv", str(d / "train.csv"), "--valid-csv", str(d / "valid.csv"), "--test-csv",
                     str(d / "test.csv"), "--label", "y", "--categorical", "user,item", "--numeric", "price",
                     "--min-count", "2", "--epochs", "1", "--batch-size", "16", "--hidden-factor", "4",
                     "--layers", "4", "--save", str(d / "m.npz")]) == 0
    return d


@pytest.fixture
def tmp(trained, tmp_path):
    """A fresh folder with a copy of the trained model and its training file."""
    for name in ("m.npz", "train.csv"):
        (tmp_path / name).write_bytes((trained / name).read_bytes())
    return tmp_path


def encoder(tmp):
    return Fe.Encoder.from_arrays(checkpoint.load(tmp / "m.npz")[1])


# ------------------------------------------------------------------ the command line, table-driven
TRAIN_CSV = ["train", "--epochs", "1", "--batch-size", "16", "--hidden-factor", "4", "--layers", "4", "--csv"]
PREDICT = ["predict", "--load", "{tmp}/m.npz", "--csv"]
EVALUATE = ["evaluate", "--load", "{tmp}/m.npz", "--csv"]

# (case id, argv with {tmp} and {file}, file maker (tmp -> path), status, pattern of stderr, pattern of stdout)
CLI_CASES = [
    # --- class 16: columns nobody named are never used silently
    ("unnamed column", TRAIN_CSV + ["{file}", "--label", "y", "--numeric", "price"], shop, 2,
     r"shop\.csv: no option names columns 'user', 'item', and a column nobody named is not used; name each column: "
     r"--categorical, --numeric, --multi-valued or --ignore \(or --categorical '\*' for every column", None),
    ("a column no option names, beside a list", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "user"],
     lambda t: write(t, "leak.csv", rows("user,y,y2", lambda i: f"u{i % 4},{i % 3},{i % 3 * 2}", 60)), 2,
     r"leak\.csv: no option names column 'y2', and a column nobody named is not used; name each column: "
     r"--categorical, --numeric, --multi-valued or --ignore \(or --categorical '\*'", None),
    ("a column no option names, beside every list", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "u",
                                                                 "--numeric", "p", "--ignore", "q"],
     lambda t: write(t, "g.csv", rows("u,p,q,genres,y", lambda i: f"u{i % 4},{i},x,a|b,{i % 3}", 60)), 2,
     r"g\.csv: no option names column 'genres', and a column nobody named is not used", None),
    ("near-unique column from '*'", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*"],
     lambda t: write(t, "ts.csv", rows("user,ts,y", lambda i: f"u{i % 4},{1000 + i},{i % 3}", 100)), 2,
     r"ts\.csv: column 'ts' is near-unique \(70 distinct values in 70 rows, 70 of them seen once\): .* "
     r"--numeric ts or --ignore ts, or name it with --categorical ts to keep it", None),
    ("near-unique column named", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "user,ts"],
     lambda t: write(t, "ts.csv", rows("user,ts,y", lambda i: f"u{i % 4},{1000 + i},{i % 3}", 100)), 0,
     None, r"warning: categorical column 'ts' is near-unique \(70 distinct values in 70 rows"),
    ("'*' and --ignore", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*", "--ignore", "price"], shop,
     0, None, r"user\s+categorical"),
    # --- class 10: the reader
    ("process substitution path", TRAIN_CSV + ["/dev/fd/{fd}", "--label", "y", "--categorical", "user,item",
                                               "--ignore", "price"], shop, 0, None, r"test rmse"),
    ("named FIFO", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*"],
     lambda t: fifo_without_writer(t), 2, r"pipe is a named pipe \(FIFO\): reading it would wait forever", None),
    ("a folder", TRAIN_CSV + ["{tmp}", "--label", "y", "--categorical", "*"], shop, 2, r" is a folder", None),
    ("wrong delimiter", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*", "--delimiter", ","],
     lambda t: write(t, "semi.csv", SHOP.replace(",", ";")), 2,
     r"semi\.csv, line 1: no label column 'y': the header reads as one column 'user;item;price;y' with delimiter "
     r"','; the delimiter seems wrong \(it looks like ';': --delimiter ';'\)", None),
    ("unsniffed delimiter", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*"],
     lambda t: write(t, "pipe.csv", SHOP.replace(",", "|")), 2,
     r"pipe\.csv, line 1: no label column 'y': .*it looks like '\|'", None),
    ("quote as delimiter", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*", "--delimiter", '"'], shop,
     2, r"delimiter '\"' cannot separate fields: it is the quote character", None),
    ("space as delimiter", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*", "--delimiter", " "], shop,
     2, r"delimiter ' ' cannot separate fields: whitespace other than tab", None),
    ("UTF-16 without a mark", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*"],
     lambda t: write(t, "u16.csv", SHOP.encode("utf-16-le")), 2,
     r"u16\.csv, line 1: not UTF-8 text \(a NUL byte: perhaps UTF-16\)", None),
    ("UTF-16 with a mark", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*"],
     lambda t: write(t, "u16.csv", SHOP.encode("utf-16")), 2,
     r"u16\.csv: not UTF-8 text: it starts with a UTF-16 byte-order mark", None),
    ("Latin-1 on line 4", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*"],
     lambda t: write(t, "lat.csv", ("a,y\nx,1\ny,2\ncafé,3\n" + "z,1\n" * 40).encode("latin-1")), 2,
     r"lat\.csv, line 4: not UTF-8 text \(byte 0xe9", None),
    ("a 200 KB cell", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "u", "--ignore", "note"],
     lambda t: write(t, "long.csv", rows("u,note,y", lambda i: f"u{i % 4},\"{'x' * 200_000 if i == 3 else 'ok'}\","
                                                                f"{i % 3}", 40)), 0, None, r"test rmse"),
    ("empty column name", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*"],
     lambda t: write(t, "e.csv", "a,,y\n1,2,3\n"), 2,
     r"e\.csv, line 1, column 2: a column with no name; name it, or remove it", None),
    ("trailing delimiter", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*"],
     lambda t: write(t, "e.csv", "a,y,\n1,2,\n"), 2,
     r"e\.csv, line 1, column 3: a column with no name \(a delimiter at the end of the header line\?\)", None),
    ("a name twice after stripping", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*"],
     lambda t: write(t, "e.csv", "a, a,y\n1,2,3\n"), 2,
     r"e\.csv, line 1, column 2: the header names column 'a' twice \(columns 1 and 2\)", None),
    ("unclosed quote names its line", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "*"],
     lambda t: write(t, "q.csv", "a,y\n1,2\n3,\"4\n5,6\n7,8\n"), 2,
     r"q\.csv, line 3: unexpected end of data \(an unclosed quote", None),
    # --- class 7: predict never reads labels
    ("predict, blank labels", PREDICT + ["{file}"],
     lambda t: write(t, "sheet.csv", "user,item,price,y\nu1,i1,3,\nu2,i2,4,\n"), 0, None, r"\A(-?[0-9.e+-]+\n){2}\Z"),
    ("predict, text labels", PREDICT + ["{file}"],
     lambda t: write(t, "sheet.csv", "user,item,price,y\nu1,i1,3,fill me\nu2,i2,4,?\n"), 0, None,
     r"\A(-?[0-9.e+-]+\n){2}\Z"),
    ("evaluate, blank label", EVALUATE + ["{file}"],
     lambda t: write(t, "sheet.csv", "user,item,price,y\nu1,i1,3,1\nu2,i2,4,\n"), 2,
     r"sheet\.csv, line 3, column 'y': the label is missing", None),
    ("evaluate, no label column", EVALUATE + ["{file}"],
     lambda t: write(t, "sheet.csv", "user,item,price\nu1,i1,3\n"), 2, r"sheet\.csv: no label column 'y'", None),
    # --- class 8: a rare value is not unseen
    ("rare value, --unseen error", PREDICT + ["{file}", "--unseen", "error"],
     lambda t: write(t, "p.csv", "user,item,price\nrare,i1,3\n"), 0, None, r"\A-?[0-9.e+-]+\n\Z"),
    ("predict, a value too large for the model's float32", PREDICT + ["{file}"],
     lambda t: write(t, "p.csv", "user,item,price\nu1,i1,3\nu1,i1,1e300\n"), 2,
     r"p\.csv, line 3, column 'price': the standardised value .* does not fit float32 \(max 3\.4e\+38\); a model "
     r"trained with --dtype float64 holds it", None),
    ("never-seen value, --unseen error", PREDICT + ["{file}", "--unseen", "error"],
     lambda t: write(t, "p.csv", "user,item,price\nrare,i1,3\nnever,i1,3\n"), 2,
     r"p\.csv, line 3, column 'user': value 'never' was never seen in training \(1 such cell;", None),
    # --- classes 2 and 9: numbers too large for the dtype
    ("label too large for float32", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "u"],
     lambda t: write(t, "big.csv", rows("u,y", lambda i: f"u{i % 4},{'1e39' if i == 30 else i % 3}", 100)), 2,
     r"big\.csv, line 32, column 'y': the label 1e\+39 does not fit float32 \(max 3\.4e\+38\); --dtype float64 "
     r"holds it", None),
    ("label too large for float64", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "u"],
     lambda t: write(t, "big.csv", rows("u,y", lambda i: f"u{i % 4},{'1e400' if i == 30 else i % 3}", 100)), 2,
     r"big\.csv, line 32, column 'y': '1e400' is too large for float64 \(max 1\.798e\+308\)$", None),
    ("an error names the file's line after the split", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "u",
                                                                    "--numeric", "p"],
     lambda t: write(t, "late.csv", rows("u,p,y", lambda i: f"u{i % 4},{i if i < 40 else 'x'},{i % 3}", 100)), 2,
     None, None),                                # the line is computed in the test (first bad line in train)
    # --- issue 16, adversarial: one test decides a cell is no number and marks it
    ("a no-break space before a number", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "u", "--numeric",
                                                      "p"],
     lambda t: write(t, "nb.csv", rows("u,p,y", lambda i: f"u{i % 4},{chr(0xa0) + '7' if i == 38 else i},{i % 3}",
                                       100)), 2,
     r"nb\.csv, line 40, column 'p': '\\xa07' is not a number \(a numeric column", None),
    ("a no-break space before a label", EVALUATE + ["{file}"],
     lambda t: write(t, "sheet.csv", "user,item,price,y\nu1,i1,3,1\nu2,i2,4,\u00a07\n"), 2,
     r"sheet\.csv, line 3, column 'y': label '\\xa07' is not a number", None),
    ("a 200 KB numeric cell is cut", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "u", "--numeric", "p"],
     lambda t: write(t, "long.csv", rows("u,p,y", lambda i: f"u{i % 4},{'9' * 99 + 'x' * 200_000 if i == 3 else i},"
                                                           f"{i % 3}", 40)), 2,
     r"long\.csv, line 5, column 'p': '9{40}'\.\.\. \(200,099 characters\) is not a number \(a numeric column;"
     r".{0,200}$", None),
    ("a 300 KB label is cut", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "u"],
     lambda t: write(t, "long.csv", rows("u,y", lambda i: f"u{i % 4},{'y' * 300_000 if i == 3 else i % 3}", 40)), 2,
     r"long\.csv, line 5, column 'y': label 'y{40}'\.\.\. \(300,000 characters\) is not a number.{0,200}$", None),
    ("a value too large to standardise names its line", TRAIN_CSV + ["{file}", "--label", "y", "--categorical", "u",
                                                                      "--numeric", "p", "--dtype", "float64"],
     lambda t: write(t, "huge.csv", rows("u,p,y", lambda i: f"u{i % 4},{'1e308' if i in (30, 31) else i},{i % 3}",
                                         100)), 2,
     r"huge\.csv, line (32|33): column 'p' holds values too large to standardise \(1e\+308 here; their squares "
     r"overflow float64\); rescale them, or use buckets \(p:8\)", None),
    ("predict: Arabic digits in a numeric cell", PREDICT + ["{file}"],
     lambda t: write(t, "p.csv", "user,item,price\nu1,i1,3\nu1,i1,\u0663\n"), 2,
     r"p\.csv, line 3, column 'price': '\u0663' is not a number", None),
]


def fifo_without_writer(t):
    p = t / "pipe"
    os.mkfifo(p)
    return p


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_csv_command_line(case, tmp, capsys):
    name, argv, make, status, pattern, out_pattern = case
    f = make(tmp)
    fds = []
    if "{fd}" in " ".join(argv):                 # a pipe, as process substitution <(cat f) gives
        r, w = os.pipe()
        os.write(w, f.read_bytes())
        os.close(w)
        fds.append(r)
    writer = release_fifo(f) if f.is_fifo() else None
    files = [p for p in tmp.iterdir() if p.is_file()]
    before = digest(files)
    argv = [a.format(tmp=tmp, file=f, fd=fds[0] if fds else "") for a in argv]
    try:
        code, out, err = run_cli(argv, capsys)
    finally:
        for fd in fds:
            os.close(fd)
        if writer:
            writer()
    if name == "an error names the file's line after the split":
        train = Fe.split_rows(100, (0.7, 0.2, 0.1), 2016)[0]
        pattern = rf"late\.csv, line {min(i for i in train if i >= 40) + 2}, column 'p': 'x' is not a number"
    if status:
        assert_one_line_error(code, err, status, pattern)
    else:
        assert code == 0, err
        assert "Traceback" not in err
    if out_pattern:
        assert re.search(out_pattern, out), out
    assert digest(files) == before


def release_fifo(path):
    """A writer that opens ``path`` (a FIFO) in a thread: if a reader wrongly opens the FIFO it gets an
    empty file at once (the test fails instead of hanging). Returns the function that frees the thread."""
    thread = threading.Thread(target=lambda: open(path, "wb").close(), daemon=True)
    thread.start()

    def free():
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)      # lets the writer's open() return
        thread.join()
        os.close(fd)
    return free


def test_process_substitution_in_a_real_shell(tmp):
    """``--csv <(cat f)``: a pipe the reader must not seek."""
    import subprocess
    import sys
    f = shop(tmp)
    before = digest([f])
    r = subprocess.run(["bash", "-c", f"{sys.executable} -m nfm_numpy train --csv <(cat {f}) --label y "
                                      "--categorical '*' --epochs 1 --hidden-factor 4 --layers 4 --batch-size 16"],
                       cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert r.returncode == 0 and "test rmse" in r.stdout and "Traceback" not in r.stderr, r.stderr
    assert digest([f]) == before


# ------------------------------------------------------------------ the library, table-driven
def lib(fn):
    """A case: ``fn(tmp)`` is the call to make."""
    return fn


def negatives_nearly_full(t):
    log = {"user": np.array(["a"] * 9 + ["b", "c"], dtype=object),
           "item": np.array([str(i) for i in range(9)] + ["0", "1"], dtype=object)}
    return Fe.add_negatives(log, "user", "item", n=2)


def forged_rare_values(t):
    arrays = Fe.Encoder(categorical="u", min_count=2).fit({"u": np.array(["a", "a", "b"], dtype=object)}).to_arrays()
    arrays["encoder.rare0"] = np.array(["b", "c", "d"])               # more than the one rare value declared
    return Fe.Encoder.from_arrays(arrays)


def old_checkpoint(t):
    enc = Fe.Encoder(categorical="u", min_count=2).fit({"u": np.array(["a", "a", "b"], dtype=object)})
    arrays = enc.to_arrays()
    del arrays["encoder.rare0"]                       # as an encoder saved before rare values were recorded
    return Fe.Encoder.from_arrays(arrays)


def shuffled_mapping(t):
    data = {"u": np.array(["a"] * 10, dtype=object), "p": np.array(["1"] * 5 + ["x"] + ["1"] * 4, dtype=object)}
    table = Fe.as_table(data).take(np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]))
    return Fe.Encoder(categorical="u", numeric="p").fit(table)


def three_files_with_negatives(t):
    def part(n, bad=None):
        return rows("user,item,p", lambda i: f"u{i % 4},i{i % 5},{'zz' if i == bad else i}", n) + f"u9,i{40 + n},1\n"
    return Fe.load_csv_split(write(t, "tr.csv", part(40)), "label", ["user", "item"], numeric="p", negatives=2,
                             user="user", item="item", valid_path=write(t, "va.csv", part(10)),
                             test_path=write(t, "te.csv", part(9, bad=6)))


def yes_no(t, text=YESNO, **kw):
    return Fe.load_csv_split(write(t, "yn.csv", text), "bought", "*", loss="log", **kw)


def standardised_overflow_in_float64(t):
    enc = Fe.Encoder(numeric="p", label="y").fit({"p": np.array([0.0, 1e-160]), "y": np.array([1.0, 2.0])})
    return Fe.read_csv_dataset(write(t, "p.csv", "p,y\n0,1\n1e300,2\n"), enc, dtype=np.float64)


# (case id, call (tmp -> result), exception type, pattern)
LIB_CASES = [
    # --- class 4: negatives
    ("negatives: too few unused items", negatives_nearly_full, DataError,
     r"user 'a' used 9 of the 9 items, leaving 0 unused, fewer than the 2 negatives each of their rows needs "
     r"\(1 such user\); leave out the users who used every item"),
    ("negatives: one unused item, two wanted",
     lambda t: Fe.add_negatives({"user": np.array(["a"] * 8 + ["b"], dtype=object),
                                 "item": np.array([str(i) for i in range(8)] + ["8"], dtype=object)}, "user", "item"),
     DataError, r"user 'a' used 8 of the 9 items, leaving 1 unused.*; use --negatives 1 or fewer"),
    ("negatives: n = 0", lambda t: Fe.add_negatives({"u": np.array(["a"]), "i": np.array(["x"])}, "u", "i", n=0),
     OptionError, r"negatives must be >= 1, got 0"),
    ("negatives: n = 2.5", lambda t: Fe.add_negatives({"u": np.array(["a"]), "i": np.array(["x"])}, "u", "i", 2.5),
     OptionTypeError, r"negatives must be an integer, got 2\.5"),
    ("negatives: user not a name", lambda t: Fe.add_negatives({"u": np.array(["a"])}, 5, "i"), OptionTypeError,
     r"user must be a column name \(a str\), got 5"),
    ("negatives: same labels", lambda t: Fe.add_negatives({"u": np.array(["a"]), "i": np.array(["x"])}, "u", "i",
                                                          positive=1, negative=1), OptionError,
     r"positive and negative labels must differ"),
    ("negatives: no such column", lambda t: Fe.add_negatives({"u": np.array(["a"])}, "u", "item"), OptionError,
     r"data: no column 'item'; the columns are 'u'"),
    # --- class 10: the reader's arguments and files
    ("read_csv: empty path", lambda t: Fe.read_csv(""), OptionError, r"path must be a file name, got an empty one"),
    ("read_csv: None path", lambda t: Fe.read_csv(None), OptionTypeError, r"path must be a file name, got None"),
    ("read_csv: quote delimiter", lambda t: Fe.read_csv(shop(t), delimiter='"'), OptionError,
     r"delimiter '\"' cannot separate fields"),
    ("read_csv: newline delimiter", lambda t: Fe.read_csv(shop(t), delimiter="\n"), OptionError,
     r"delimiter '\\n' cannot separate fields: it ends a row"),
    ("read_csv: delimiter 5", lambda t: Fe.read_csv(shop(t), delimiter=5), OptionTypeError,
     r"delimiter must be one character"),
    ("read_csv: unknown encoding", lambda t: Fe.read_csv(shop(t), encoding="klingon"), OptionError,
     r"encoding 'klingon' is not a text encoding"),
    ("read_csv: a device", lambda t: Fe.read_csv("/dev/null"), DataError,
     r"/dev/null is not a regular file \(a device or socket\)"),
    ("read_csv: a missing file", lambda t: Fe.read_csv(t / "nope.csv"), DataError,
     r"nope\.csv: No such file or directory"),
    ("read_csv: NUL on line 3", lambda t: Fe.read_csv(write(t, "n.csv", b"a,b\n1,2\n3,\x004\n")), DataError,
     r"n\.csv, line 3: not UTF-8 text \(a NUL byte"),
    ("numeric buckets ''", lambda t: Fe.Encoder(numeric={"price": ""}), OptionTypeError,
     r"buckets of 'price' must be a whole number >= 2 \(or 0 or None: standardised\), got ''"),
    ("numeric buckets 1", lambda t: Fe.Encoder(numeric={"price": 1}), OptionError,
     r"buckets of 'price' must be >= 2, got 1"),
    ("numeric buckets 8.0", lambda t: Fe.Encoder(numeric={"price": 8.0}), OptionTypeError,
     r"buckets of 'price' must be a whole number"),
    ("a list in a cell", lambda t: Fe.Encoder(categorical="*").fit({"a": np.array([[1], [2, 3]], dtype=object)}),
     DataError, r"data, row 1, column 'a': a cell holds a list; a cell must be text or a number"),
    ("negatives: one item, one wanted",
     lambda t: Fe.add_negatives({"u": np.array(["a"], dtype=object), "i": np.array(["x"], dtype=object)}, "u", "i", 1),
     DataError, r"user 'a' used 1 of the 1 items, leaving 0 unused, fewer than the 1 negative each of their rows"),
    ("shuffled mapping rows keep their numbers", shuffled_mapping, DataError,
     r"data, row 6, column 'p': 'x' is not a number"),
    ("three files with negatives: the test file's line", three_files_with_negatives, DataError,
     r"te\.csv, line 8, column 'p': 'zz' is not a number"),
    # --- class 14: the encoder's and the functions' arguments
    ("multi_valued as a list", lambda t: Fe.Encoder(categorical="user", multi_valued=["tags"]), OptionTypeError,
     r"multi_valued must be a mapping of column -> separator such as \{'genres': '\|'\}, got \['tags'\]"),
    ("categorical 5", lambda t: Fe.Encoder(categorical=5), OptionTypeError,
     r"categorical must be a column name or a list of them, got 5"),
    ("categorical a dict", lambda t: Fe.Encoder(categorical={"a": 1}), OptionTypeError,
     r"categorical must be a column name or a list of them"),
    ("categorical with an empty name", lambda t: Fe.Encoder(categorical=["a", " "]), OptionError,
     r"categorical\[1\] must be a column name, got an empty one"),
    ("ignore 5", lambda t: Fe.Encoder(ignore=5), OptionTypeError, r"ignore must be a column name or a list"),
    ("label 3", lambda t: Fe.Encoder(label=3), OptionTypeError, r"label must be a column name \(a str\), got 3"),
    ("missing [1]", lambda t: Fe.Encoder(missing=[1]), OptionTypeError, r"missing must hold texts, got 1"),
    ("min_count 0", lambda t: Fe.Encoder(min_count=0), OptionError, r"min_count must be >= 1, got 0"),
    ("'*' in numeric", lambda t: Fe.Encoder(numeric=["*"]), OptionError,
     r"'\*' \(every column no other option names\) is a value of categorical only"),
    ("split_rows n = 0", lambda t: Fe.split_rows(0), OptionError, r"n must be >= 1, got 0"),
    ("split_rows n = '10'", lambda t: Fe.split_rows("10"), OptionTypeError, r"n must be an integer, got '10'"),
    ("join: a column it has", lambda t: Fe.join({"k": np.array(["1"]), "c": np.array(["x"])},
                                                {"k": np.array(["1"]), "c": np.array(["y"])}, "k"), OptionError,
     r"data already has a column 'c'; give a prefix"),
    ("join: on 5", lambda t: Fe.join({"k": np.array(["1"])}, {"k": np.array(["1"])}, 5), OptionTypeError,
     r"on must be a column name"),
    ("load_csv_split: dtype int32", lambda t: Fe.load_csv_split(shop(t), "y", "*", dtype="int32"), OptionError,
     r"dtype must be float32 or float64, got int32"),
    ("load_csv_split: loss hinge", lambda t: Fe.load_csv_split(shop(t), "y", "*", loss="hinge"), OptionError,
     r"loss must be one of square, log; got 'hinge'"),
    ("load_csv_split: negatives -1", lambda t: Fe.load_csv_split(shop(t), "y", "*", negatives=-1), OptionError,
     r"negatives must be >= 0, got -1"),
    ("load_csv_split: user without negatives", lambda t: Fe.load_csv_split(shop(t), "y", "*", user="user"),
     OptionError, r"--user-col and --item-col go with --negatives"),
    ("load_csv_split: two split fractions", lambda t: Fe.load_csv_split(shop(t), "y", "*", split=(0.7, 0.3)),
     OptionError, r"split needs three fractions \(train, validation, test\), got 2"),
    ("write_csv: no columns", lambda t: Fe.write_csv(t / "shop.csv", {}), OptionError,
     r"write_csv: the table has no columns"),
    ("load_csv_split: empty valid path",
     lambda t: Fe.load_csv_split(shop(t), "y", "*", valid_path="", test_path=shop(t)), OptionError,
     r"valid_path must be a file name, got an empty one"),
    ("read_csv_dataset: not an encoder", lambda t: Fe.read_csv_dataset(shop(t), "enc"), OptionTypeError,
     r"encoder must be a fitted Encoder, got str"),
    ("read_csv_dataset: need_y 'no'", lambda t: Fe.read_csv_dataset(shop(t), encoder(t), need_y="no"),
     OptionTypeError, r"need_y must be True or False"),
    ("negatives: the item column ignored",
     lambda t: Fe.load_csv_split(write(t, "log.csv", rows("user,item,ctx", lambda i: f"u{i % 7},i{i % 11},c{i % 2}",
                                                           60)),
                                 "y", ["user", "ctx"], ignore="item", negatives=1, user="user", item="item"),
     OptionError, r"--item-col 'item' is ignored: the negatives differ from their positives by the item .* both must "
     r"be feature fields"),
    ("negatives: the user column is the label",
     lambda t: Fe.load_csv_split(shop(t), "user", "*", negatives=1, user="user", item="item"), OptionError,
     r"--user-col 'user' is the label column"),
    ("a NUL character at the end of a value",
     lambda t: Fe.Encoder(categorical="u").fit({"u": np.array(["x", "y", "x\0"], dtype=object)}), DataError,
     r"data, row 3, column 'u': 'x\\x00' holds a NUL character \(\\x00\), which is not text"),
    ("a NUL character at transform",
     lambda t: Fe.Encoder(categorical="u", label="y").fit({"u": np.array(["x", "y"], dtype=object)}).transform(
         {"u": np.array(["y", "x\0"], dtype=object)}, unseen="error"), DataError,
     r"data, row 2, column 'u': 'x\\x00' holds a NUL character"),
    ("split: a fraction that gives no rows", lambda t: Fe.split_rows(300, (0.998, 0.001, 0.001)), DataError,
     r"300 rows are too few for split 0\.998, 0\.001, 0\.001: the test fraction 0\.001 gives 0 of the 300 rows"),
    ("read_csv: a UTF-32 file", lambda t: Fe.read_csv(write(t, "u32.csv", "a,y\nx,1\n".encode("utf-32"))), DataError,
     r"u32\.csv: not UTF-8 text: it starts with a UTF-32 byte-order mark; save it as UTF-8"),
    ("no such column among 3000", lambda t: Fe.Encoder(categorical="score").fit({f"c{i}": np.zeros(2) for i in
                                                                                 range(3000)}), OptionError,
     r"^data: no column 'score'; the columns are 'c0', 'c1', .*'c19', \.\.\. \(3,000 columns\)$"),
    ("a column name with a BOM and a comma", lambda t: Fe.Encoder(categorical="user").fit(
        {"\ufeffuser": np.zeros(2), "a,b": np.zeros(2)}), OptionError,
     r"no column 'user'; the columns are '\\ufeffuser', 'a,b'$"),
    # --- class 8: an encoder saved before rare values were recorded
    ("old checkpoint with rare values", old_checkpoint, CheckpointError,
     r"older nfm_numpy that did not record which values of field 'u' were rare .* train the model again"),
    ("rare values beyond the declared count", forged_rare_values, CheckpointError,
     r"the saved feature encoder is damaged \(field 'u': its rare values overlap its vocabulary or outnumber the 1"),
    # --- class 17: text labels and the positive class
    ("text labels, log loss", lambda t: yes_no(t), DataError,
     r"yn\.csv, line \d+, column 'bought': label '(no|yes)' is not a number \(name the positive class, e\.g\. "
     r"--positive yes; the labels are 'no', 'yes'\)"),
    ("text labels, square loss", lambda t: Fe.load_csv_split(write(t, "yn.csv", YESNO), "bought", "*"), DataError,
     r"yn\.csv, line \d+, column 'bought': label '(no|yes)' is not a number \(the square loss needs numbers; for two "
     r"classes use --loss log --positive yes"),
    ("three classes", lambda t: yes_no(t, THREE, positive="yes"), DataError,
     r"yn\.csv: label column 'bought' holds 3 values \('maybe', 'no', 'yes'\)"),
    ("a positive class never seen", lambda t: yes_no(t, positive="Yes"), DataError,
     r"the positive class 'Yes' never occurs in the training labels \(column 'bought' holds 'no', 'yes'\)"),
    ("positive with the square loss",
     lambda t: Fe.load_csv_split(write(t, "yn.csv", YESNO), "bought", "*", positive="yes"), OptionError,
     r"positive names the positive class of the log loss"),
    ("positive with negatives",
     lambda t: Fe.load_csv_split(shop(t), "y", "*", loss="log", positive="1", negatives=1, user="user",
                                 item="item"), OptionError, r"with negatives the label is made"),
    ("positive '' ", lambda t: yes_no(t, positive=""), OptionError, r"positive must be a label value"),
    ("a third class in the validation file",
     lambda t: Fe.load_csv_split(write(t, "yn.csv", YESNO), "bought", "*", loss="log", positive="yes",
                                 valid_path=write(t, "v.csv", "user,item,bought\nu1,i1,yes\nu2,i2,maybe\n"),
                                 test_path=write(t, "w.csv", "user,item,bought\nu1,i1,no\n")), DataError,
     r"v\.csv, line 3, column 'bought': label 'maybe' is neither class of the training labels \('yes', the "
     r"positive class, and 'no'\)"),
    ("numbers 1/2 under the log loss",
     lambda t: Fe.load_csv_split(write(t, "12.csv", rows("u,y", lambda i: f"u{i % 4},{1 + i % 2}", 40)), "y", "*",
                                 loss="log"), DataError,
     r"12\.csv, line \d+, column 'y': label 2 cannot be used with the log loss.*--positive 2\)"),
    # --- classes 2 and 9: dtypes
    ("standardised overflow in float64", standardised_overflow_in_float64, DataError,
     r"p\.csv, line 3, column 'p': the standardised value inf does not fit float64 \(max 1\.8e\+308\); rescale "
     r"the column$"),
]


@pytest.mark.parametrize("case", LIB_CASES, ids=[c[0] for c in LIB_CASES])
def test_csv_library(case, tmp):
    name, call, kind, pattern = case
    shop(tmp)
    files = [p for p in tmp.iterdir() if p.is_file()]
    before = digest(files)
    with pytest.raises(kind) as e:
        call(tmp)
    message = str(e.value)
    assert "\n" not in message and re.search(pattern, message), message
    assert digest(files) == before


# ------------------------------------------------------------------ what must work
def test_negatives_draw_exactly_rows_times_n_numbers(monkeypatch):
    """A user who used all but one item: the old rejection loop drew again and again (no end in 400 s
    at 20,000 rows); now every row takes exactly n draws, so the time is O(rows x n)."""
    drawn = []
    real = np.random.default_rng

    class Counting:
        def __init__(self, seed):
            self.rng = real(seed)

        def integers(self, *a, **kw):
            out = self.rng.integers(*a, **kw)
            drawn.append(np.size(out))
            return out

    monkeypatch.setattr(np.random, "default_rng", Counting)
    user = np.array(["a"] * 2000 + ["b"] * 10, dtype=object)             # 'a' used 99 of the 100 items
    item = np.array([str(i % 99) for i in range(2000)] + [str(i) for i in range(90, 100)], dtype=object)
    out = Fe.add_negatives({"user": user, "item": item}, "user", "item", n=1, seed=3)
    assert sum(drawn) == 2010
    assert set(out["item"][2010:][user == "a"].tolist()) == {"99"}           # the one item 'a' never used
    used = set(zip(user.tolist(), item.tolist()))
    assert not any(p in used for p in zip(out["user"][2010:].tolist(), out["item"][2010:].tolist()))


def test_negatives_are_uniform_over_the_unused_items():
    user = np.array(["x"] * 3 + ["y"] * 4 + ["z"] * 3, dtype=object)
    item = np.array(["0", "1", "2", "0", "1", "2", "3", "4", "5", "6"], dtype=object)
    out = Fe.add_negatives({"user": np.tile(user, 300), "item": np.tile(item, 300)}, "user", "item", n=2, seed=1)
    neg_u, neg_i = out["user"][3000:], out["item"][3000:]
    counts = np.unique(neg_i[neg_u == "x"], return_counts=True)
    assert counts[0].tolist() == ["3", "4", "5", "6"] and counts[1].min() > 0.8 * counts[1].max()
    assert all(a != b for a, b in neg_i.reshape(-1, 2).tolist())            # distinct for one positive


def test_a_rare_value_is_the_trained_oov_feature_whatever_unseen_says():
    enc = Fe.Encoder(categorical="u", min_count=2).fit({"u": np.array(["a", "a", "b", "c", "c"], dtype=object)})
    new = {"u": np.array(["b", "z", "a"], dtype=object)}
    for unseen in ("oov", "ignore"):
        idx, val, _, n_unseen = enc.transform(new, unseen)
        assert n_unseen == 1                                                  # z only: b is rare, not unseen
        assert idx[0, 0] == 0 and val[0, 0] == 1.0                            # b: the OOV feature, x = 1
    assert enc.transform({"u": np.array(["b"], dtype=object)}, "error")[3] == 0
    back = Fe.Encoder.from_arrays(enc.to_arrays())
    assert back.fields[0].rare.tolist() == ["b"] and back.transform(new, "ignore")[0].tolist() == \
        enc.transform(new, "ignore")[0].tolist()


def test_an_encoder_saved_without_rare_values_still_loads():
    enc = Fe.Encoder(categorical="u").fit({"u": np.array(["a", "b"], dtype=object)})
    arrays = enc.to_arrays()
    del arrays["encoder.rare0"]
    assert Fe.Encoder.from_arrays(arrays).transform({"u": np.array(["a"], dtype=object)})[0].tolist() == [[1]]


@pytest.mark.parametrize("blank", [None, np.nan, np.float32("nan"), pd.NA, pd.NaT, ""],
                         ids=["None", "nan", "float32 nan", "pd.NA", "pd.NaT", "empty"])
def test_every_missing_value_is_the_empty_cell(blank):
    data = {"c": np.array(["a", blank, "b"], dtype=object)}
    enc = Fe.Encoder(categorical="c").fit(data)
    assert sorted(enc.fields[0].vocab.tolist()) == ["", "a", "b"]
    cell = None if isinstance(blank, str) else blank
    num = Fe.Encoder(numeric="n").fit({"n": np.array([1.0, cell, 3.0], dtype=object)})
    assert num.fields[0].counts["missing"] == 1


def test_library_arguments_mean_what_they_say():
    data = {"user": np.array(["a", "b", "a"], dtype=object), "p": np.array([1.0, 2.0, 3.0])}
    enc = Fe.Encoder(categorical="user", numeric=None, ignore="p").fit(data)    # "user" is one column
    assert [(f.name, f.kind) for f in enc.fields] == [("user", "categorical")]
    enc = Fe.Encoder(categorical="*", numeric="p").fit(data)
    assert [(f.name, f.kind) for f in enc.fields] == [("user", "categorical"), ("p", "numeric")]
    assert Fe.join({"k": np.array(["1"])}, {"k": np.array(["1"]), "c": np.array(["x"]), "d": np.array(["y"])},
                   "k", columns="c").names == ["k", "c"]
    assert Fe.Encoder(categorical="b").fit({"b": np.array([b"x", "é".encode()])}).fields[0].vocab.tolist() == \
        ["x", "é"]                                                            # bytes are the text they hold
    df = pd.DataFrame({"user": ["a", None, "b"], "y": [1.0, 2.0, 3.0]})
    assert Fe.Encoder(categorical="*", label="y").fit(df).fields[0].counts["values"] == 3


def test_predict_reads_no_label_and_a_positive_class_is_saved(tmp):
    split, enc, notes = Fe.load_csv_split(write(tmp, "yn.csv", YESNO), "bought", "*", loss="log", positive="yes")
    assert "labels for the log loss: 'yes' -> 1 (the positive class), 'no' -> 0" in notes
    assert set(split.train.y.tolist()) == {0.0, 1.0}
    back = Fe.Encoder.from_arrays(enc.to_arrays())
    assert back.positive == "yes" and "positive class 'yes'" in str(back)
    sheet = write(tmp, "s.csv", "user,item,bought\nu1,i1,\nu2,i2,who knows\n")
    assert len(Fe.read_csv_dataset(sheet, back, "log", need_y=False)[0]) == 2
    data, _ = Fe.read_csv_dataset(write(tmp, "e.csv", "user,item,bought\nu1,i1,yes\nu2,i2,no\n"), back, "log")
    assert data.y.tolist() == [1.0, 0.0]                    # the saved positive class, without naming it again
    with pytest.raises(OptionError, match=r"trained with the positive class 'yes', not 'no'"):
        Fe.read_csv_dataset(sheet, back, "log", positive="no")


def test_labels_are_read_in_float64(tmp):
    f = write(tmp, "e8.csv", rows("u,y", lambda i: f"u{i % 5},{100000001 + i % 7}", 100))
    split, _, notes = Fe.load_csv_split(f, "y", "*", dtype="float64")
    assert set(split.train.y.tolist()) <= set(range(100000001, 100000008)) and split.train.y.dtype == np.float64
    split, _, notes = Fe.load_csv_split(f, "y", "*")
    assert any("in float32 (whole numbers above 16,777,216 are rounded); --dtype float64 keeps them" in n
               for n in notes)
    big = write(tmp, "big.csv", rows("u,y", lambda i: f"u{i % 4},{'1e39' if i == 3 else i % 3}", 40))
    assert Fe.load_csv_split(big, "y", "*", dtype=np.float64)[0].train.y.dtype == np.float64


def test_a_pipe_is_read_without_seeking(tmp):
    r, w = os.pipe()
    os.write(w, SHOP.encode())
    os.close(w)
    try:
        t = Fe.read_csv(f"/dev/fd/{r}")
    finally:
        os.close(r)
    assert len(t) == 100 and t.lines[-1] == 101


def test_the_padding_id_is_not_special_to_the_encoder():
    """The first field's OOV feature is id 0, the padding id: the encoder gives it x = 1 like any feature
    (padding entries are the ones with x = 0; the optimisers make padding touch nothing)."""
    enc = Fe.Encoder(categorical="u", min_count=2).fit({"u": np.array(["a", "a", "b"], dtype=object)})
    idx, val, _, _ = enc.transform({"u": np.array(["b", "new"], dtype=object)})
    assert idx[:, 0].tolist() == [0, 0] and val[:, 0].tolist() == [1.0, 1.0]


def test_write_csv_reads_back_as_the_encoder_saw_it(tmp):
    data = {"a": np.array([1.0, np.nan, 2.5]), "b": np.array(["x,y", None, pd.NA], dtype=object)}
    Fe.write_csv(tmp / "w.csv", data)
    back = Fe.read_csv(tmp / "w.csv")
    assert back["a"].tolist() == ["1", "", "2.5"] and back["b"].tolist() == ["x,y", "", ""]
    enc = Fe.Encoder(categorical="*").fit(data)
    np.testing.assert_array_equal(enc.transform(back)[0], enc.transform(data)[0])
