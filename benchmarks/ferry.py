"""Move a trained checkpoint and its dataset splits between machines through a file channel
that takes only a few small files: bf16 weights, no optimizer state, gzipped splits, one
xz-compressed tar (bf16 weights shrink to ~74%) cut into parts of at most --part-mib MiB, with
a sha256 to check them by.

Why: a GPU device machine keeps what it trained only while it stays warm. The training call
packs its checkpoint into the call's output folder, so a later call on a fresh machine can
evaluate it, or train on from it (`model.path`: a checkpoint is a base model), with the
device tool carrying the unpacked folder back there.

    # on the machine that trained (the pipeline's long-train stage does this)
    python3 benchmarks/ferry.py pack --run runs/train-bench/run-long --data datasets/arith-long \
        --splits train,val,test --name long --out OUTDIR
    # where the parts arrived: check them and unpack to .ferry/long/{checkpoint,data}
    python3 benchmarks/ferry.py unpack --parts OUTDIR --name long --dest .ferry

`unpack` refuses parts whose sha256 or size differ from the pack's record; it reads packs
made before the compression too.

The device tool's carry is capped too (64 MiB with the working tree). An unpacked folder
travels smaller as one archive, which gpu_pipeline.sh expands on arrival:

    python3 benchmarks/ferry.py archive --name long     # .ferry/long -> .ferry/long.tar.xz
    python3 benchmarks/ferry.py expand --name long      # .ferry/long.tar.xz -> .ferry/long (unless
                                                        # it came from this archive already)

A dataset alone (e.g. more test records, generated where node is) travels as a gzipped folder:

    python3 benchmarks/ferry.py splits --data datasets/arith-long-heldout --name heldout  # .ferry/heldout
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

SKIP = {"trainer_state.pt", "adapter"}  # resume state: not needed to evaluate
STAMP = ".archive-sha256"  # in a folder `expand` made: the archive it came from


def _bf16_safetensors(src: Path, dst: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous() for k, v in load_file(str(src)).items()}
    save_file(tensors, str(dst), metadata={"format": "pt"})


def copy_checkpoint(ckpt: Path, dst: Path) -> None:
    """The checkpoint as an HF folder with bf16 weights (the engine decodes in bf16)."""
    dst.mkdir(parents=True)
    for f in sorted(ckpt.iterdir()):
        if f.name in SKIP or not f.is_file():
            continue
        if f.suffix == ".safetensors":
            _bf16_safetensors(f, dst / f.name)
        elif f.name == "config.json":
            cfg = json.loads(f.read_text())
            for key in ("dtype", "torch_dtype"):
                if key in cfg:
                    cfg[key] = "bfloat16"
            (dst / f.name).write_text(json.dumps(cfg, indent=2) + "\n")
        else:
            shutil.copy2(f, dst / f.name)


def copy_splits(data: Path, splits: list[str], dst: Path) -> None:
    """A dataset folder holding these splits (gzipped; the loader reads them and checks their
    hashes). Arithmetic text compresses ~20x: arith-long's 20K train records are ~4 MB."""
    if not (data / "manifest.json").is_file():
        raise SystemExit(f"{data} is not a dataset folder (no manifest.json; spanattn gen-data makes one)")
    manifest = json.loads((data / "manifest.json").read_text())
    missing = [s for s in splits if s not in manifest["splits"]]
    if missing:
        raise SystemExit(f"{data} has no split {missing[0]!r} (it has {', '.join(manifest['splits'])})")
    dst.mkdir(parents=True)
    for split in splits:
        info = manifest["splits"][split]
        src = data / info["file"]
        with (open(src, "rb") if src.exists() else gzip.open(str(src) + ".gz", "rb")) as fin, \
                gzip.open(dst / (info["file"] + ".gz"), "wb", compresslevel=6) as fout:
            shutil.copyfileobj(fin, fout)
    (dst / "manifest.json").write_text(json.dumps({**manifest, "splits": {s: manifest["splits"][s] for s in splits}},
                                                  indent=2) + "\n")


def pack(args) -> dict:
    from spanattn.checkpoint import latest_checkpoint

    if args.checkpoint:
        ckpt = Path(args.checkpoint)
    else:
        found = latest_checkpoint(Path(args.run))
        if found is None:
            raise SystemExit(f"{args.run} has no checkpoint")
        ckpt = found[1]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / args.name
        copy_checkpoint(ckpt, root / "checkpoint")
        if args.data:
            copy_splits(Path(args.data), args.splits.split(","), root / "data")
        tar_path = Path(tmp) / f"{args.name}.tar"
        _write_tar(tar_path, root, args.name, args.compress)
        digest, size, parts = hashlib.sha256(), tar_path.stat().st_size, []
        part_bytes = int(args.part_mib * 2**20)
        with open(tar_path, "rb") as f:
            while chunk := f.read(part_bytes):
                name = f"ferry-{args.name}.tar.part{len(parts):02d}"
                (out / name).write_bytes(chunk)
                digest.update(chunk)
                parts.append(name)
    record = {"name": args.name, "checkpoint": str(ckpt), "data": args.data, "splits": args.splits.split(",") if args.data else None,
              "compression": args.compress, "bytes": size, "sha256": digest.hexdigest(), "parts": parts}
    (out / f"ferry-{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def unpack(args) -> dict:
    parts_dir = Path(args.parts)
    record = json.loads((parts_dir / f"ferry-{args.name}.json").read_text())
    digest, size = hashlib.sha256(), 0
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        tar_path = Path(tmp) / f"{args.name}.tar"
        with open(tar_path, "wb") as f:
            for name in record["parts"]:
                chunk = (parts_dir / name).read_bytes()
                digest.update(chunk)
                size += len(chunk)
                f.write(chunk)
        if size != record["bytes"] or digest.hexdigest() != record["sha256"]:
            raise SystemExit(f"the parts of {args.name} do not match their record (size {size} vs {record['bytes']}, "
                             "or sha256): a part is missing or damaged")
        target = dest / args.name
        if target.exists():
            shutil.rmtree(target)
        with tarfile.open(tar_path, "r:*") as tar:  # xz, or none (packs made before)
            tar.extractall(dest, filter="data")
    return {**record, "unpacked": str(dest / args.name)}


def _write_tar(path: Path, folder: Path, arcname: str, compress: str, skip: str | None = None) -> None:
    # preset 0: ~4x faster than the default for 1% more bytes on bf16 weights
    opts = {"mode": "w:xz", "preset": 0} if compress == "xz" else {"mode": "w"}
    with tarfile.open(path, **opts) as tar:
        tar.add(folder, arcname=arcname, filter=lambda m: None if skip and m.name.endswith("/" + skip) else m)


def _move_into_place(built: Path, target: Path) -> None:
    """Replace target (if any) with the folder built beside it."""
    if target.exists():
        shutil.rmtree(target)
    built.replace(target)


def archive(args) -> dict:
    """DEST/NAME -> DEST/NAME.tar.xz, for the device tool's carry (without expand's stamp)."""
    folder, target = Path(args.dest) / args.name, Path(args.dest) / f"{args.name}.tar.xz"
    if not folder.is_dir():
        raise SystemExit(f"{folder} is not a folder (benchmarks/ferry.py unpack makes one)")
    tmp = target.with_name(target.name + ".tmp")
    _write_tar(tmp, folder, args.name, "xz", skip=STAMP)
    tmp.replace(target)
    return {"name": args.name, "folder": str(folder), "archive": str(target), "bytes": target.stat().st_size}


def expand(args) -> dict:
    """DEST/NAME.tar.xz -> DEST/NAME. A folder this archive made (its sha256 is stamped inside)
    is kept; any other (stale, from an earlier carry) is replaced."""
    dest = Path(args.dest)
    source, folder = dest / f"{args.name}.tar.xz", dest / args.name
    if not source.is_file():
        raise SystemExit(f"{source} does not exist (benchmarks/ferry.py archive makes it)")
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    stamp = folder / STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest.hexdigest():
        return {"name": args.name, "archive": str(source), "expanded": str(folder), "kept": True}
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        with tarfile.open(source, "r:xz") as tar:
            names = {m.name.split("/")[0] for m in tar.getmembers()}
            if names != {args.name}:
                raise SystemExit(f"{source} holds {sorted(names)}, not one folder {args.name}")
            tar.extractall(tmp, filter="data")
        (Path(tmp) / args.name / STAMP).write_text(digest.hexdigest() + "\n")
        _move_into_place(Path(tmp) / args.name, folder)
    return {"name": args.name, "archive": str(source), "expanded": str(folder), "kept": False}


def splits(args) -> dict:
    """A dataset's splits, gzipped, as the dataset folder DEST/NAME (to carry beside an archive:
    arith-long-heldout's 5,000 test records are ~1 MB so). Written beside and moved into place."""
    target = Path(args.dest) / args.name
    if target.exists() and not args.force:
        raise SystemExit(f"{target} exists (--force replaces it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        copy_splits(Path(args.data), args.splits.split(","), Path(tmp) / args.name)
        _move_into_place(Path(tmp) / args.name, target)
    return {"name": args.name, "data": args.data, "splits": args.splits.split(","), "folder": str(target),
            "bytes": sum(f.stat().st_size for f in target.iterdir())}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--run", help="run folder (its newest checkpoint)")
    a.add_argument("--checkpoint", help="a checkpoint folder instead")
    a.add_argument("--data", help="dataset folder to take splits of")
    a.add_argument("--splits", default="test", help="comma-separated (train,val,test: enough to train on further)")
    a.add_argument("--name", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--part-mib", type=float, default=15)
    a.add_argument("--compress", choices=["xz", "none"], default="xz")
    b = sub.add_parser("unpack")
    b.add_argument("--parts", required=True, help="folder holding ferry-NAME.json and its parts")
    b.add_argument("--name", required=True)
    b.add_argument("--dest", default=".ferry")
    c = sub.add_parser("archive", help="DEST/NAME -> DEST/NAME.tar.xz (to carry)")
    c.add_argument("--name", required=True)
    c.add_argument("--dest", default=".ferry")
    d = sub.add_parser("expand", help="DEST/NAME.tar.xz -> DEST/NAME")
    d.add_argument("--name", required=True)
    d.add_argument("--dest", default=".ferry")
    e = sub.add_parser("splits", help="a dataset's splits, gzipped, as the dataset folder DEST/NAME (to carry)")
    e.add_argument("--data", required=True)
    e.add_argument("--splits", default="train,val,test", help="comma-separated; the loader wants train")
    e.add_argument("--name", required=True)
    e.add_argument("--dest", default=".ferry")
    e.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    if args.cmd == "pack" and not (args.run or args.checkpoint):
        p.error("pack needs --run or --checkpoint")
    print(json.dumps({"pack": pack, "unpack": unpack, "archive": archive, "expand": expand, "splits": splits}[args.cmd](args)))


if __name__ == "__main__":
    main()
