#!/bin/sh
# lm-evaluation-harness against Stoker's OpenAI-compatible chat endpoint. Generation tasks
# (generate_until) only: Stoker returns no logprobs, which loglikelihood tasks need.
#   pip install "lm_eval[api]"; OPENAI_API_KEY=<team token> sh examples/lm_eval.sh
set -eu
SERVER="${STOKER_SERVER:-http://127.0.0.1:8420}"
lm_eval --model local-chat-completions \
        --model_args "model=tiny-llama,base_url=$SERVER/v1/chat/completions,num_concurrent=32,max_retries=3,tokenized_requests=False" \
        --apply_chat_template \
        --tasks gsm8k --limit 50 \
        --gen_kwargs temperature=0,max_gen_toks=256
