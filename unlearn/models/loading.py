"""Loading causal language models and tokenizers, and building the built-in tiny Llama.

Any Hugging Face causal LM loads by hub id or local folder. The built-in benchmark has no
pretrained model, so the project trains a byte-level BPE tokenizer on the benchmark's text and
builds a small Llama from a config; ``unlearn.training.finetune`` then teaches it the benchmark.
"""

from __future__ import annotations

from pathlib import Path

import torch
from unlearn.errors import ModelLoadError, UnlearnError
from unlearn.models.safe_load import is_refused_pickle, refusal

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BOS, EOS = "<s>", "</s>"


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"Unknown dtype '{name}'; choose one of {', '.join(DTYPES)}.")
    return DTYPES[name]


# What a tokenizer folder holds (save_pretrained writes one or more of these); none of them: no tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                   "vocab.txt", "spiece.model", "sentencepiece.bpe.model", "*.tiktoken")
# transformers' advice that holds only for a sentencepiece or tiktoken vocabulary.
CONVERTER_ADVICE = "sentencepiece or tiktoken installed"


def _cause(folder: Path, err: Exception) -> str:
    """``err`` as ``(Type: message)``, without advice that does not apply to ``folder``."""
    lines = str(err).splitlines()
    if folder.is_dir() and not any(folder.glob("*.model")) and not any(folder.glob("*.tiktoken")):  # nothing to convert
        lines = [line for line in lines if CONVERTER_ADVICE not in line]
    text = " ".join(line.strip() for line in lines if line.strip())
    return f" ({type(err).__name__}: {text})" if text else ""


def _explain(path: str, what: str, err: Exception) -> UnlearnError:
    local = Path(path).expanduser()
    if is_refused_pickle(err):  # never pass on torch's advice to load it with weights_only=False
        weights = sorted(local.glob("*.bin")) if local.is_dir() else []
        return refusal(weights[0] if len(weights) == 1 else local, err,
                       "Delete it and save the model again with save_pretrained (which writes safetensors), "
                       "or download it again from a source you trust.")
    if local.is_file():
        return ModelLoadError(f"Cannot load {what} from '{path}': it is a file, not a model folder. Give the folder "
                              "the model was saved to (save_pretrained: config.json, weights, tokenizer files), "
                              "or a Hugging Face hub id.")
    if not local.exists():
        return ModelLoadError(f"Cannot load {what} from '{path}': no such local folder, and not reachable as a "
                              f"Hugging Face hub id (offline, misspelt, or gated).{_cause(local, err)}")
    where = f"the folder exists but does not hold a loadable {what}"
    if what == "tokenizer" and not any(any(local.glob(name)) for name in TOKENIZER_FILES):
        return ModelLoadError(f"Cannot load tokenizer from '{path}': {where}. It has none of the tokenizer files "
                              f"({', '.join(TOKENIZER_FILES)}). Save the tokenizer there (tokenizer.save_pretrained) "
                              "or set model.tokenizer to a folder or hub id that has one.")
    if what != "tokenizer" and not (local / "config.json").is_file():
        return ModelLoadError(f"Cannot load {what} from '{path}': {where}. It has no config.json. Give the folder "
                              "the model was saved to (save_pretrained), or a Hugging Face hub id.")
    return ModelLoadError(f"Cannot load {what} from '{path}': {where}.{_cause(local, err)}")


def load_tokenizer(path: str, trust_remote_code: bool = False):
    """A tokenizer with a pad token: EOS doubles as pad when it has none (docs/definitions.md, "Notation")."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as err:
        raise _explain(path, "tokenizer", err) from err
    if tokenizer.eos_token_id is None:
        raise ModelLoadError(f"The tokenizer at '{path}' has no EOS token; answers must end with one.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, dtype: str = "float32", trust_remote_code: bool = False,
               attn_implementation: str | None = None):
    """A causal LM from a hub id or local folder, in ``dtype``."""
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": torch_dtype(dtype), "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except Exception as err:
        raise _explain(path, "causal language model", err) from err


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on ``texts``; byte-level, so no text is ever unknown.

    It has BOS and EOS but no pad token, like Llama's, so the pad-equals-EOS path is the one
    every built-in run exercises.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS)


def build_tiny_llama(tokenizer=None, hidden_size: int = 128, num_hidden_layers: int = 4, num_attention_heads: int = 4,
                     intermediate_size: int = 256, max_position_embeddings: int = 512, seed: int = 0, **overrides):
    """A freshly initialised small ``LlamaForCausalLM`` sized to ``tokenizer``, its weights drawn from ``seed``.

    The global random state is left as it was. Embeddings are tied.

    Args:
        tokenizer: Gives the vocabulary size and the BOS/EOS ids (EOS also pads); None: pass ``vocab_size``.
        **overrides: Further ``LlamaConfig`` fields, applied last (``vocab_size=``, ``attention_dropout=``,
            ``tie_word_embeddings=False``...).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = dict(hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                    num_attention_heads=num_attention_heads, num_key_value_heads=num_attention_heads,
                    intermediate_size=intermediate_size, max_position_embeddings=max_position_embeddings,
                    tie_word_embeddings=True)
    if tokenizer is not None:
        settings.update(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    settings.update(overrides)
    if "vocab_size" not in settings:
        raise TypeError("build_tiny_llama needs a tokenizer or vocab_size=")
    config = LlamaConfig(**settings)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)
