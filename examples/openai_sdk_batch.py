"""The OpenAI Batch API against Stoker with the official SDK, unchanged.

    STOKER_TOKEN=<team token> python examples/openai_sdk_batch.py [http://127.0.0.1:8420]

Uploads examples/job.jsonl's chat lines, runs them as a batch, waits, and prints the answers;
then asks one online chat question, streamed.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

from openai import OpenAI


def main() -> None:
    server = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8420"
    client = OpenAI(base_url=f"{server}/v1", api_key=os.environ.get("STOKER_TOKEN", "none"))
    lines = [line for line in (Path(__file__).parent / "job.jsonl").read_text().splitlines()
             if '"/v1/chat/completions"' in line]
    upload = client.files.create(file=("job.jsonl", io.BytesIO("\n".join(lines).encode())),
                                 purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"tier": "smoke"})
    while batch.status not in ("completed", "failed", "cancelled", "expired"):
        time.sleep(0.5)
        batch = client.batches.retrieve(batch.id)
    print(f"batch {batch.id}: {batch.status}, {batch.request_counts}")
    if batch.output_file_id:
        for raw in client.files.content(batch.output_file_id).text.splitlines():
            line = json.loads(raw)
            answer = line["response"]["body"]["choices"][0]["message"]["content"]
            print(f"{line['custom_id']}: {answer!r}")
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Say hello"}], max_tokens=16,
        stream=True)
    print("online:", "".join(c.choices[0].delta.content or "" for c in stream if c.choices))


if __name__ == "__main__":
    main()
