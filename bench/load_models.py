#!/usr/bin/env python3
"""Load N synthetic models into a running modelcat over one keep-alive
connection (stdlib only). Used by bench/api.sh.

usage: load_models.py HOST PORT [COUNT]

Ids are bench-org/model-0000 .. bench-org/model-(COUNT-1), zero-padded to
four digits. Every POST must answer 201; anything else stops the load with
the status and body on stderr and exit status 1.
"""
import http.client
import json
import os
import socket
import sys

FAMILIES = ["llama", "qwen", "mistral", "gemma", "phi", "deepseek", "falcon", "olmo"]
ARCHS = ["LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM",
         "Gemma2ForCausalLM", "Phi3ForCausalLM", "DeepseekV3ForCausalLM",
         "FalconForCausalLM", "OlmoForCausalLM"]
QUANTS = ["bf16", "fp16", "fp8", "awq", "gptq-int4", "int8"]
LICENSES = ["apache-2.0", "mit", "llama3.1", "gemma", "cc-by-nc-4.0", "other"]
SIZES = [0.5, 1.5, 3, 7, 8, 13, 14, 32, 70, 72, 123, 405]
CONTEXTS = [4096, 8192, 32768, 131072]
TAGS = ["chat", "instruct", "base", "code", "math", "vision", "multilingual",
        "reasoning", "tool-use", "long-context"]


def model(i):
    fam = FAMILIES[i % len(FAMILIES)]
    size = SIZES[(i * 7) % len(SIZES)]
    quant = QUANTS[(i * 5) % len(QUANTS)]
    name = f"{fam.capitalize()} {size}B Bench Model {i:04d}"
    desc = (f"Synthetic benchmark entry {i:04d}: a {size} billion parameter "
            f"{fam} decoder-only transformer, {quant} weights, instruction tuned "
            f"for chat and tool use. Loaded by bench/api.sh to measure the "
            f"catalog's read path under load.")
    desc = (desc + " " + "x" * 200)[:200]
    return {
        "id": f"bench-org/model-{i:04d}",
        "name": name,
        "family": fam,
        "parameters_b": size,
        "architecture": ARCHS[i % len(ARCHS)],
        "context_length": CONTEXTS[(i * 3) % len(CONTEXTS)],
        "quantization": quant,
        "license": LICENSES[(i * 11) % len(LICENSES)],
        "source_uri": f"https://huggingface.co/bench-org/model-{i:04d}",
        "description": desc,
        "tags": [TAGS[i % 10], TAGS[(i + 3) % 10], TAGS[(i + 6) % 10]],
    }


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    host, port = sys.argv[1], int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) == 4 else 1000
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    key = os.environ.get("MODELCAT_BOOTSTRAP_ADMIN_KEY")  # writes need a credential
    if key:
        headers["Authorization"] = f"Bearer {key}"
    conn = None
    reconnects = 0
    for i in range(count):
        body = json.dumps(model(i), separators=(",", ":")).encode()
        for attempt in (0, 1):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=30)
                    conn.connect()
                    # One small request per round trip: no Nagle delays.
                    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.request("POST", "/api/v1/models", body, headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError) as e:
                # The server may close a keep-alive connection between
                # requests; retry once on a fresh connection.
                if conn is not None:
                    conn.close()
                conn = None
                reconnects += 1
                if attempt:
                    print(f"load_models: POST #{i} failed: {e!r}", file=sys.stderr)
                    return 1
        # A retried POST that had reached the server answers 409: fine.
        if resp.status != 201 and not (attempt and resp.status == 409):
            print(f"load_models: POST {model(i)['id']} -> {resp.status}: "
                  f"{data[:500].decode('utf-8', 'replace')}", file=sys.stderr)
            return 1
        if resp.will_close:
            conn.close()
            conn = None
            reconnects += 1
    if conn is not None:
        conn.close()
    print(f"load_models: {count} models created ({reconnects} reconnects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
