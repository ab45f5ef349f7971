-- post.lua — wrk script: every request a small JSON chat completion POST.
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"gemma","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":16,"stream":false}'
