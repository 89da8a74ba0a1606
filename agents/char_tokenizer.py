"""A compact character-level tokenizer that is an ordinary ``transformers`` tokenizer.

    from agents.char_tokenizer import build_char_tokenizer
    tok = build_char_tokenizer(extra_text=[demo.prompt + demo.completion for demo in demos])
    tok.save_pretrained(path)                              # later: AutoTokenizer.from_pretrained(path)

One token per character: printable ASCII, tab and newline, any other character seen in ``extra_text``, and the
specials ``<pad>``, ``<s>`` (BOS), ``</s>`` (EOS), ``<unk>`` (any character not in the vocabulary). It is a
``tokenizers`` BPE model with no merges wrapped in ``PreTrainedTokenizerFast``, so loading it needs no custom code.

Nothing is added automatically when encoding (no BOS/EOS post-processor), so ``tok(text)`` gives the same ids with
or without ``add_special_tokens``. BOS comes from the chat template instead, which renders a user turn as
``"<s>{prompt}\\n=> "``: ``polyenv.models.format_prompt(tok, prompt)`` is then the exact context a warm-started
policy is trained on and sampled from, and the completion follows ``"=> "`` and ends with ``</s>``.
"""

from __future__ import annotations

from collections.abc import Iterable

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
BASE_CHARS = "\t\n" + "".join(chr(c) for c in range(32, 127))
"""Tab, newline and printable ASCII (space through ``~``)."""
MAX_VOCAB_CHARS = 4096

# A user (or system) turn is its text and a newline; the generation prompt is "=> "; an assistant turn ends with EOS.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}=> {{ message['content'] }}{{ eos_token }}\n"
    "{% else %}{{ message['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}=> {% endif %}"
)
GENERATION_PROMPT = "=> "


def char_vocabulary(extra_text: Iterable[str] = ()) -> list[str]:
    """The characters of the vocabulary: :data:`BASE_CHARS` then new characters of ``extra_text`` in sorted order."""
    chars = dict.fromkeys(BASE_CHARS)
    extra = set()
    for text in extra_text:
        if not isinstance(text, str):
            raise TypeError(f"extra_text must contain strings, got {type(text).__name__}")
        extra.update(text)
    for ch in sorted(extra - set(chars)):
        chars[ch] = None
    if len(chars) > MAX_VOCAB_CHARS:
        raise ValueError(f"{len(chars)} distinct characters exceed the limit of {MAX_VOCAB_CHARS}; "
                         "a character-level vocabulary is meant for small synthetic domains")
    return list(chars)


def build_char_tokenizer(extra_text: Iterable[str] = (), model_max_length: int = 1024):
    """A ``PreTrainedTokenizerFast`` with one id per character (specials first: pad=0, bos=1, eos=2, unk=3)."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in char_vocabulary(extra_text):
        vocab[ch] = len(vocab)
    # BPE without merges splits text into single characters and maps unknown ones to <unk>; Fuse joins them back.
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, fuse_unk=False))
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        padding_side="left",
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
