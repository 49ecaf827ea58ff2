"""A tiny random-weight Llama checkpoint with a byte-level BPE tokenizer, built in tmp.

Used when the shipped model is not wanted (fast fault tests). The tokenizer is
trained on AgenticDSL text so that DSL documents take few tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

_CORPUS = [
    '### AgenticDSL `/dynamic/plan_1`\n```yaml\n# --- BEGIN AgenticDSL ---\n'
    'graph_type: subgraph\nentry: "start"\nnodes:\n  - id: "start"\n    type: start\n'
    '    next: ["/dynamic/plan_1/search"]\n  - id: "search"\n    type: tool_call\n'
    '    tool: "web_search"\n    arguments:\n      "query": "{{ city }}"\n'
    '    output_keys: ["results"]\n    next: ["/dynamic/plan_1/end"]\n'
    '  - id: "end"\n    type: end\n# --- END AgenticDSL ---\n```\n',
    "Find three hotels in {{ city }} under {{ budget }} and rank them. assign assert fork join",
    "generate_subgraph dsl_call llm_call termination_mode output_keys prompt_template wait_for",
]


def build_tiny_model(path: Path, *, vocab_size: int = 600, seed: int = 0) -> Path:
    """Write config.json, model.safetensors and tokenizer.json under ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM

    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 2, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 20, trainer)
    tok.save(str(path / "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, eos_token_id=eos, bos_token_id=eos,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(str(path), safe_serialization=True)
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": eos}))
    return path
