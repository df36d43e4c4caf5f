"""``hearth-convert`` / ``python convert/convert.py``: command-line arguments."""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import ConvertError

DESCRIPTION = "Convert a Hugging Face model (Llama / Mistral-style, Qwen2) to one GGUF file that hearth and llama.cpp load."

EPILOG = """\
which tensor gets which type (as llama.cpp's converter and llama-quantize do):
  norms and biases (all 1-D tensors)  f32, always
  -t f32 | f16 | bf16                 every 2-D weight in that type
  -t q8_0                             every 2-D weight q8_0
  -t q4_0                             2-D weights q4_0, except the output matrix (output.weight,
                                      or token_embd.weight when the embeddings are tied and it
                                      serves as the output), which stays q8_0
  -t q4_k_m | q5_k_m | q6_k           llama-quantize's K-quant mixes (Q4_K_M, ...), by its
  -t q3_k_m | q2_k                    reference quantizers (no importance matrix): the output
                                      matrix q6_K, more bits for some layers' attn_v and
                                      ffn_down (q6_K in Q4_K_M), the base type elsewhere; rows
                                      that are not a multiple of 256 fall back as llama.cpp's
                                      do (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, q2_K/q3_K
                                      -> q4_0)
  --pure                              every 2-D weight in the named type, the output included
  a 2-D weight whose row length is not a multiple of 32 cannot be quantized: it is written
  as f16, with a warning (as llama.cpp does)

tokenizer: tokenizer.model (SentencePiece, llama) else tokenizer.json (byte-level BPE) else
qwen.tiktoken (Qwen v1); chat template from tokenizer_config.json or chat_template.jinja.
The token list is padded to the embedding's rows with [PAD{i}] tokens.

examples:
  hearth-convert ./SmolLM2-135M-Instruct -o smollm2-q8_0.gguf -t q8_0
  hearth-convert ./Qwen2.5-0.5B-Instruct --outfile qwen2.5-0.5b-q4_0.gguf --outtype q4_0
  hearth-convert ./TinyLlama-1.1B-Chat-v1.0 -o tinyllama-Q4_K_M.gguf -t q4_k_m
  hearth-convert Qwen/Qwen2.5-0.5B-Instruct -t q4_k_m                (fetched with huggingface_hub)
  hearth-convert Qwen/Qwen2.5-0.5B-Instruct -t q4_k_m --hub modelscope
"""


def build_parser() -> argparse.ArgumentParser:
    from .converter import OUTTYPES

    p = argparse.ArgumentParser(prog="hearth-convert", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL",
                   help="a Hugging Face model folder (config.json, *.safetensors or pytorch_model*.bin, "
                        "tokenizer files), or a hub id owner/name")
    p.add_argument("-o", "--outfile", metavar="OUT.gguf",
                   help="output file (default: MODEL/<folder name>-<TYPE>.gguf)")
    p.add_argument("-t", "--outtype", metavar="TYPE", default="f16",
                   help=f"type of the 2-D weights: {', '.join(OUTTYPES)} (default f16); see below")
    p.add_argument("--pure", action="store_true",
                   help="put every 2-D weight in TYPE, the output matrix included")
    p.add_argument("--hub", choices=("huggingface", "modelscope"), default=None,
                   help="where a hub id MODEL comes from (default huggingface; HEARTH_USE_MODELSCOPE=True "
                        "means modelscope)")
    p.add_argument("--vocab-only", action="store_true",
                   help="write the tokenizer (and the hyperparameters) only, no weights")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log each step")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="hearth-convert: %(levelname)s: %(message)s")
    from pathlib import Path

    from .converter import OUTTYPES, convert

    outtype = args.outtype.lower()
    if outtype not in OUTTYPES:
        parser.error(f"unknown output type {args.outtype!r}; choose one of: {', '.join(OUTTYPES)}")
    outfile = args.outfile
    if outfile is None:
        folder = Path(args.model)
        suffix = "vocab" if args.vocab_only else outtype.upper()
        outfile = folder / f"{folder.resolve().name}-{suffix}.gguf" if folder.is_dir() else Path(
            f"{args.model.replace('/', '-')}-{suffix}.gguf")
    try:
        path = convert(args.model, outfile, outtype, pure=args.pure, vocab_only=args.vocab_only,
                       progress=False if args.no_progress else None, hub=args.hub)
    except ConvertError as e:
        print(f"hearth-convert: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hearth-convert: interrupted; no output written", file=sys.stderr)
        return 130
    print(f"hearth-convert: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
