/*
 * fuzz_chat_template.c — Gemma 3's chat template on arbitrary JSON, and the
 * template recogniser on arbitrary text. Built as one translation unit with
 * src/infer/chat_template.c (the fuzz runner links only src/core).
 *
 * First byte: bit 0 add_generation_prompt, bit 1 continue_final_message; the
 * rest is a messages array (JSON) and, NUL-terminated, a template text. Checks:
 * no crash, the output buffer's cap holds, a failed render leaves it as it was.
 * fuzz-max-len: 4096
 */
#include "../../src/infer/chat_template.c"
#include "../../src/infer/gguf.c" /* chat_template_check_dir reads a GGUF file's template */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1) return 0;
	json_doc *doc = json_parse((const char *)data + 1, size - 1, 0, NULL);
	if (doc) {
		buf out;
		buf_init(&out, 1 << 16);
		buf_puts(&out, "x");
		char err[256];
		int rc = chat_render(json_root(doc), data[0] & 1, data[0] & 2, &out, err, sizeof(err));
		if (rc < 0 && (buf_rlen(&out) != 1 || buf_rptr(&out)[0] != 'x')) __builtin_trap();
		if (rc == 0 && (buf_rlen(&out) < 1 + 5 || memcmp(buf_rptr(&out) + 1, "<bos>", 5) != 0)) __builtin_trap();
		buf_free(&out);
		json_doc_free(doc);
	}
	char *text = malloc(size);
	if (!text) return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = 0;
	char err[256];
	chat_template_supported(text, err, sizeof(err));
	free(text);
	return 0;
}
