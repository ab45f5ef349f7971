/*
 * tokenizer.h — the Gemma 3 tokenizer: a SentencePiece-style BPE read from a
 * Hugging Face tokenizer.json, with byte fallback and added tokens.
 *
 * What it does, in the order the reference (Hugging Face tokenizers and
 * transformers.js) does it:
 *   1. invalid UTF-8 in the input becomes U+FFFD (one per maximal invalid
 *      subpart, as a WHATWG TextDecoder does): the reference only ever sees
 *      valid strings, and this is what a JSON request or a JS client gives it;
 *   2. added tokens (special or not: <start_of_turn>, <bos>, "\n\n", "<b>", ...)
 *      are matched in the raw text, leftmost and longest first, and become
 *      their ids whatever surrounds them;
 *   3. every other section has " " replaced by "▁" and is merged by BPE over
 *      its code points, lowest merge rank first, leftmost first on ties;
 *   4. a piece the vocabulary lacks is written as its UTF-8 bytes <0xNN>.
 * Decoding joins pieces, turns "▁" back into " ", and decodes runs of byte
 * tokens as UTF-8 (invalid or incomplete runs become U+FFFD, again per maximal
 * subpart). No dummy prefix, no clean-up of spaces.
 *
 * A loaded tokenizer is read-only: share one between threads freely. Encoding
 * allocates scratch proportional to the input (once per call, not per token).
 * Not here: the chat template (chat_template.h), the model's stop ids
 * (generation_config.json, read by the model loader).
 */
#ifndef INFER_TOKENIZER_H
#define INFER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

typedef struct tokenizer tokenizer;

/* Loads model_dir/tokenizer.json and, when present, model_dir/tokenizer_config.json
 * (bos/eos/pad/unk token names). Returns the tokenizer (free with tokenizer_free)
 * or NULL with a message naming the file in err. */
tokenizer *tokenizer_load(const char *model_dir, char *err, size_t errlen);
/* The same from explicit paths; config_path may be NULL. */
tokenizer *tokenizer_load_files(const char *tokenizer_json_path, const char *config_path,
				char *err, size_t errlen);
void tokenizer_free(tokenizer *t);

/* The vocabulary of a GGUF file (path: a .gguf file or a folder holding one):
 * tokenizer.ggml.model "llama", its tokens, scores and token types. Encoding
 * then follows llama.cpp's SentencePiece tokenizer instead of steps 1-4 above:
 * control, user-defined and unknown tokens are cut out of the text (longest
 * pieces first, leftmost first), each other section has " " replaced by "▁"
 * (one more in front after a special token when
 * tokenizer.ggml.add_space_prefix is true) and is merged pair by pair, the
 * pair whose joined text is the token of highest score first, leftmost on
 * ties; what is left that is no token becomes byte tokens. Input bytes are
 * taken as they are (llama.cpp does not replace invalid UTF-8). Decoding is
 * the same as above. tokenizer_load and tokenizer_load_cached call this for a
 * GGUF path. */
struct gguf_set;
tokenizer *tokenizer_load_gguf(const char *path, char *err, size_t errlen);
tokenizer *tokenizer_from_gguf(const struct gguf_set *g, char *err, size_t errlen);

/* Where tokenizer_load_cached found its tables. */
typedef enum tokenizer_source {
	TOKENIZER_BUILT,       /* built from tokenizer.json; the cache could not be written */
	TOKENIZER_BUILT_SAVED, /* built from tokenizer.json and saved to tokenizer.bin */
	TOKENIZER_MAPPED,      /* mapped from a tokenizer.bin made from this tokenizer.json */
} tokenizer_source;

/* tokenizer_load with a cache of the built tables in model_dir/tokenizer.bin:
 * when that file was made from this very tokenizer.json and
 * tokenizer_config.json (size, times, inode and a hash of their ends) it is
 * mapped read-only and checked instead of parsing 33 MB of JSON (milliseconds
 * instead of a second); otherwise the tokenizer is built and the file written
 * atomically (a temporary file renamed over it). When model_dir is read-only
 * (a FUSE mount, a read-only volume) the file goes to fallback_dir instead
 * (created if needed; named by a hash of the tokenizer.json's real path;
 * NULL = no fallback), and without either there is just no cache. A damaged
 * or stale file is ignored and replaced. Mapped tables are shared by every
 * process of the machine through the page cache. *source (may be NULL) says
 * which happened. */
tokenizer *tokenizer_load_cached(const char *model_dir, const char *fallback_dir, tokenizer_source *source,
				 char *err, size_t errlen);

/* Encodes len bytes of text (any bytes; see above for invalid UTF-8), with the
 * bos id first when add_bos. Writes at most cap ids and sets *n to the number the
 * whole encoding needs. Returns 0, or -1 when *n > cap (ids then holds the first
 * cap) or on allocation failure (*n = 0). len + 2 ids always suffice for valid
 * UTF-8; invalid bytes may need up to 3 ids each, so 3 * len + 2 is the bound. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_bos,
		     int32_t *ids, size_t cap, size_t *n);

/* Appends the text of ids to out. skip_special drops special tokens (<bos>,
 * <eos>, <start_of_turn>, ...; not the other added tokens). Ids outside the
 * vocabulary decode as <unk>, as the reference does. Returns 0, or -1 when out
 * hit its cap. */
int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, int skip_special, buf *out);

/* One more than the largest id (262145 for Gemma 3: <image_soft_token> is 262144,
 * beyond the model's 262144 embedding rows; callers check ids against the model). */
size_t tokenizer_vocab_size(const tokenizer *t);
/* The piece of id exactly as the vocabulary spells it ("▁Hello", "<0x0A>",
 * "<start_of_turn>"), NUL-terminated; NULL when id has none. *len may be NULL. */
const char *tokenizer_piece(const tokenizer *t, int32_t id, size_t *len);
/* The id of a piece, or -1. */
int32_t tokenizer_piece_id(const tokenizer *t, const char *piece, size_t len);
int tokenizer_is_special(const tokenizer *t, int32_t id); /* added token marked special */
int tokenizer_byte_value(const tokenizer *t, int32_t id); /* 0..255 for <0xNN>, else -1 */
int32_t tokenizer_bos_id(const tokenizer *t);             /* tokenizer_config bos_token (2) */
int32_t tokenizer_eos_id(const tokenizer *t);             /* tokenizer_config eos_token (<end_of_turn>, 106 for Gemma 3 -it) */
int32_t tokenizer_pad_id(const tokenizer *t);             /* 0 */
int32_t tokenizer_unk_id(const tokenizer *t);             /* 3 */

/* Streaming decoder for one sequence: feed ids as they are sampled, get the text
 * that became final. A multi-byte character split across byte tokens is held back
 * until its last byte arrives; the concatenation of everything pushed and flushed
 * equals tokenizer_decode of all the ids. Embed it in the sequence; no allocation. */
typedef struct tok_stream {
	const tokenizer *tok;
	int skip_special;
	unsigned char pending[4]; /* bytes of an incomplete UTF-8 sequence */
	int n_pending;
	uint32_t need, lower, upper; /* WHATWG UTF-8 decoder state */
} tok_stream;

void tok_stream_init(tok_stream *s, const tokenizer *t, int skip_special);
/* Appends the text that id completes (maybe nothing). Returns bytes appended, or -1
 * when out hit its cap. */
int tok_stream_push(tok_stream *s, int32_t id, buf *out);
/* End of sequence: an incomplete character becomes U+FFFD. Returns bytes appended or -1. */
int tok_stream_flush(tok_stream *s, buf *out);

#endif
