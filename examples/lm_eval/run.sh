#!/bin/sh
# lm-evaluation-harness against Stoker's OpenAI-compatible chat endpoint, on a small local task
# (no dataset download); swap `--include_path … --tasks stoker_smoke` for any hub task, e.g.
# `--tasks gsm8k`. Generation tasks only: Stoker returns no logprobs, which loglikelihood tasks
# need. Run from the repository root:
#   pip install "lm_eval[api]"; OPENAI_API_KEY=<team token> sh examples/lm_eval/run.sh
set -eu
SERVER="${STOKER_SERVER:-http://127.0.0.1:8420}"
lm_eval --model local-chat-completions \
        --model_args "model=tiny-llama,base_url=$SERVER/v1/chat/completions,num_concurrent=32,max_retries=3,tokenized_requests=False" \
        --apply_chat_template \
        --include_path examples/lm_eval --tasks stoker_smoke
