# jinja2_check.py — the same cases rendered by Python's jinja2 the way
# transformers sets it up (sandboxed, trim_blocks, lstrip_blocks,
# raise_exception), compared with infergate's output. Cases with
# continue_final_message are left to reference.js. Two refusals are deliberate
# (a mapping as content, a non-string text part: jinja2 renders them).
#   python3 jinja2_check.py TOKENIZER_CONFIG CASES OURS
import json
import sys
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

config, cases_path, ours_path = sys.argv[1:4]
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)


def raise_exception(message):
    raise TemplateError(message)


env.globals["raise_exception"] = raise_exception
template = env.from_string(json.load(open(config))["chat_template"])
cases = [json.loads(line) for line in open(cases_path) if line.strip()]
ours = [json.loads(line) for line in open(ours_path) if line.strip()]
deliberate = {"Invalid content type", "a text part's text must be a string"}
bad = checked = 0
for case, got in zip(cases, ours):
    if case["continue_final_message"]:
        continue
    checked += 1
    try:
        want = {"ok": template.render(messages=case["messages"], bos_token="<bos>",
                                      add_generation_prompt=case["add_generation_prompt"])}
    except Exception as e:  # jinja2 raises several kinds; any is a refusal
        want = {"error": str(e)}
    if "ok" in want and "error" in got and any(d in got["error"] for d in deliberate):
        continue
    if ("ok" in want) != ("ok" in got) or want.get("ok") != got.get("ok"):
        bad += 1
        print("case", json.dumps(case)[:200], "\n  jinja2:", want, "\n  ours:  ", got)
    elif "error" in want and want["error"].startswith("Conversation roles") and got["error"] != want["error"]:
        bad += 1
        print("case", json.dumps(case)[:200], "refusal text differs")
print(f"{checked} cases against jinja2 {sys.modules['jinja2'].__version__}, {bad} different")
sys.exit(1 if bad else 0)
