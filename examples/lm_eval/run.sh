#!/bin/sh
# lm-evaluation-harness against Stoker's OpenAI-compatible chat endpoint, on a small local task
# (no dataset download); swap `--include_path … --tasks stoker_smoke` for any hub task, e.g.
# `--tasks gsm8k`. Log-likelihood (multiple-choice) tasks go to /v1/completions instead:
# `--model local-completions` with `base_url=$SERVER/v1/completions,tokenizer=<checkpoint dir>`
# (tests/e2e/test_clients.py runs both). Run from the repository root:
#   pip install "lm_eval[api]"; OPENAI_API_KEY=<team token> sh examples/lm_eval/run.sh
set -eu
SERVER="${STOKER_SERVER:-http://127.0.0.1:8420}"
lm_eval --model local-chat-completions \
        --model_args "model=tiny-llama,base_url=$SERVER/v1/chat/completions,num_concurrent=32,max_retries=3,tokenized_requests=False" \
        --apply_chat_template \
        --include_path examples/lm_eval --tasks stoker_smoke
