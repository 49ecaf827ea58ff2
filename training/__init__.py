"""Scripts that build the shipped model: corpus, tokenizer, training, model card.

    python -m training.corpus --out /tmp/agentic-corpus --train 8000 --heldout 200
    python -m training.tokenizer --corpus /tmp/agentic-corpus --out agentic_llm/models/agentic-tiny
    python -m training.train --corpus /tmp/agentic-corpus --out agentic_llm/models/agentic-tiny --steps 480
    python bench/validity.py --out bench/results/validity.json
    python -m training.model_card --model agentic_llm/models/agentic-tiny --validity bench/results/validity.json
"""
