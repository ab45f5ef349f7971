/*
 * chat_template.h — Gemma 3's chat template, rendered in C.
 *
 * Produces byte for byte what the official Jinja template of Gemma 3
 * (tokenizer_config.json "chat_template") renders under transformers: <bos>, a
 * leading system message folded into the first turn with "\n\n", roles that must
 * alternate user/assistant (the template's own refusal text otherwise), assistant
 * written "model", content as a string or a list of parts (text trimmed as
 * Python's str.strip does, images as <start_of_image>), the generation prompt, and
 * transformers' continue_final_message cut.
 *
 * This is not a Jinja interpreter: chat_template_supported() recognises the
 * template text and refuses any other, so a model whose template this file cannot
 * render faithfully is refused at load time.
 */
#ifndef INFER_CHAT_TEMPLATE_H
#define INFER_CHAT_TEMPLATE_H

#include <stddef.h>
#include "core/buf.h"
#include "core/json.h"

/* The template's refusal when roles do not alternate (servers answer 400 with it). */
#define CHAT_ERR_ALTERNATE "Conversation roles must alternate user/assistant/user/assistant/..."

/* Renders messages (a JSON array of {"role", "content"} objects, as in an
 * OpenAI chat request) and appends the prompt text to out. continue_final_message
 * leaves the last message open (its "<end_of_turn>\n" cut off, as transformers
 * cuts it); it may not be combined with add_generation_prompt. Returns 0, or -1
 * with a client-facing message in err (bad roles, bad content, out's cap). The
 * text starts with "<bos>": encode it without adding another. */
int chat_render(const json_val *messages, int add_generation_prompt, int continue_final_message,
		buf *out, char *err, size_t errlen);

/* Returns 1 when template_text is Gemma 3's template (whitespace between tags
 * aside), 0 with the reason in err otherwise. */
int chat_template_supported(const char *template_text, char *err, size_t errlen);

/* Finds the model's template (model_dir/chat_template.jinja, else the
 * "chat_template" of tokenizer_config.json; for a GGUF path, its
 * tokenizer.chat_template) and checks it as above. Returns 0, or
 * -1 with a message naming the file. */
int chat_template_check_dir(const char *model_dir, char *err, size_t errlen);

#endif
