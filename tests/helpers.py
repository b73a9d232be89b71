"""Tiny models and tokenizers built in-process for tests."""

from unlearn.models.loading import build_tiny_llama, train_tokenizer

QA = [
    {"question": f"What is the home city of writer number {i}?", "answer": f"Writer number {i} lives in city {i % 7}."}
    for i in range(24)
]


def tiny_tokenizer(rows=QA, vocab_size=300):
    texts = ["Question: Answer: [INST] [/INST] I don't know."] + [r["question"] + " " + r["answer"] for r in rows]
    return train_tokenizer(texts, vocab_size)


def tiny_model(tokenizer, seed=0):
    return build_tiny_llama(tokenizer, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, seed=seed)
