"""The shared layer function and the model's weight snapshot: the export's functional
variant computes what the in-place one does, and replaced parameters, swapped
storages and replaced submodules are all followed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from agentic_llm.engine import LLMEngine
from agentic_llm.engine.loader import load_model
from agentic_llm.engine.models.decoder_step import LayerStep, decoder_layer
from agentic_llm.engine.models.layers import ParameterWatch

from .conftest import build_hf, generate_staggered, random_prompts, save


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_functional_step_equals_in_place(family: str, tmp_path: Path) -> None:
    model = load_model(save(build_hf(family, seed=4), tmp_path / family)).model
    g = torch.Generator().manual_seed(1)
    h = torch.randn(5, model.config.hidden_size, generator=g)
    positions = torch.tensor([0, 3, 7, 8, 20])
    rope = model.rotary.cos_sin(positions, h.dtype)
    seen: dict[bool, list[torch.Tensor]] = {True: [], False: []}

    def recorder(in_place: bool) -> Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]:
        def attend(layer: int, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
            seen[in_place] += [q.clone(), kv.clone()]
            # any function of q and the new K/V will do: the point is what reaches it
            return q * kv[:, :1].sum(-1, keepdim=True).tanh() + kv[:, -1:].repeat(1, q.shape[1], 1)
        return attend

    w = model.weights().layers[0]
    assert w.fused
    outs = {}
    for in_place in (True, False):
        step = LayerStep(model.shape, rope.cos, rope.sin_signed, recorder(in_place), in_place)
        with torch.inference_mode():  # as the model's forward runs it
            outs[in_place] = decoder_layer(h, w, 0, step)
    assert torch.equal(outs[True], outs[False])
    for a, b in zip(seen[True], seen[False], strict=True):
        assert torch.equal(a, b)
    # the layer changed its input, and the functional run left h untouched
    assert not torch.allclose(outs[True], h)


def test_parameter_watch_counts_its_own_tree() -> None:
    tree = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    other = nn.Linear(3, 3)
    watch = ParameterWatch(tree)
    assert watch.version == 0
    with torch.no_grad():
        tree[0].weight.mul_(2.0)  # in place: the same tensors, nothing to rebuild
    other.weight = nn.Parameter(torch.zeros(3, 3))
    assert watch.version == 0
    tree[1].bias = nn.Parameter(torch.zeros(3))
    assert watch.version == 1
    new = nn.Linear(3, 3)
    tree[0] = new  # a replaced submodule, whose own parameters are then watched too
    assert watch.version == 2
    new.weight = nn.Parameter(torch.ones(3, 3))
    assert watch.version == 3
    ref = weakref.ref(watch)
    del watch
    gc.collect()
    assert ref() is None  # the registration hooks do not keep it alive
    tree[1].weight = nn.Parameter(torch.ones(3, 3))  # and a dead watch's hook is harmless


def test_swapped_storage_and_replaced_submodule_are_followed(llama_dir: Path) -> None:
    prompts = random_prompts(3, [5, 9, 3], seed=23)
    fast, generic = (LLMEngine.from_pretrained(llama_dir, num_blocks=96, block_size=4, shuffle_seed=5)
                     for _ in range(2))
    generic.model.decode_runner.enabled = False

    def run(eng: LLMEngine) -> list[list[int]]:
        return [o.output_token_ids for o in generate_staggered(eng, prompts, (12, 6, 9), top_k=3)]

    base = run(fast)
    assert base == run(generic)
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(fast.model.model.layers[1].self_attn.k_proj.weight.shape, generator=g)
    # a fused projection's storage swapped (param.data = ...): that layer's q/k/v become
    # three matmuls, so the flat runner steps aside and the generic path uses the new values
    for eng in (fast, generic):
        k = eng.model.model.layers[1].self_attn.k_proj.weight
        k.data = k.detach() + 0.3 * noise
        assert not eng.model.weights().fused
    before = fast.model.decode_runner.num_steps
    swapped = run(fast)
    assert swapped == run(generic) and swapped != base
    assert fast.model.decode_runner.num_steps == before

    # a replaced submodule (a fresh lm_head): the snapshot picks up its weight
    fresh = LLMEngine.from_pretrained(llama_dir, num_blocks=96, block_size=4, shuffle_seed=5)
    head = fresh.model.lm_head
    old = fresh.model.weights()
    replacement = nn.Linear(head.in_features, head.out_features, bias=False)
    with torch.no_grad():
        replacement.weight.copy_(head.weight.flip(0))
    fresh.model.lm_head = replacement
    assert fresh.model.weights() is not old and fresh.model.weights().head is replacement.weight
    before = fresh.model.decode_runner.num_steps
    assert run(fresh) != base
    assert fresh.model.decode_runner.num_steps > before
