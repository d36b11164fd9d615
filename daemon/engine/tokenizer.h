/* tokenizer.h - text <-> token ids from a GGUF file's tokenizer.* metadata.
 *
 * Models: "llama" (SentencePiece-style: score-driven merges, "▁" for space,
 * byte fallback through <0xXX> tokens), "gpt2" (byte-level BPE with merge
 * ranks and a pre-tokenizer chosen by tokenizer.ggml.pre), "bert" (WordPiece).
 * Behaviour follows llama.cpp's tokenizer, which the test fixtures pin.
 *
 * Text is arbitrary bytes: invalid UTF-8 is tokenized (never rejected or read
 * out of bounds), as llama.cpp does.
 *
 * Thread-safety: a tok_vocab is immutable after tok_load(); encode/decode may
 * run concurrently.
 */
#ifndef INFERD_TOKENIZER_H
#define INFERD_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf_file;
struct tok_vocab;

enum tok_model { TOK_MODEL_SPM = 1, TOK_MODEL_BPE = 2, TOK_MODEL_WPM = 3 };

/* Token attributes (tokenizer.ggml.token_type values). */
enum tok_type {
    TOK_TYPE_UNDEFINED = 0,
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6,
};

/* Build the vocab from f's metadata. The vocab keeps no pointer into f (f may
 * be closed afterwards). Returns 0 or -errno with a message in err. */
int tok_load(const struct gguf_file *f, struct tok_vocab **out, char *err, size_t errlen);
void tok_free(struct tok_vocab *v);

enum tok_model tok_model(const struct tok_vocab *v);
uint32_t tok_n_vocab(const struct tok_vocab *v);
int32_t tok_bos(const struct tok_vocab *v); /* -1 if none */
int32_t tok_eos(const struct tok_vocab *v); /* -1 if none */
bool tok_add_bos(const struct tok_vocab *v); /* from metadata or the model's default */
bool tok_add_eos(const struct tok_vocab *v);
/* End of generation: EOS, EOT, EOM and other end tokens. */
bool tok_is_eog(const struct tok_vocab *v, int32_t id);
enum tok_type tok_type_of(const struct tok_vocab *v, int32_t id);

/* Tokenize len bytes of text. add_special: prepend BOS / append EOS as the
 * vocab asks; parse_special: text matching control/user-defined tokens
 * becomes those tokens. Writes up to cap ids to out; *n_out receives the
 * number of ids (also when it exceeds cap, then -ENOSPC is returned).
 * Returns 0, -ENOSPC or -ENOMEM. */
int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_special,
               bool parse_special, int32_t *out, size_t cap, size_t *n_out);

/* The bytes token id stands for in generated text ("▁" -> ' ', <0x0A> ->
 * "\n", byte-level BPE unmapped). Control tokens give "" unless
 * render_special. Writes up to cap bytes, returns the full length (may exceed
 * cap) or -EINVAL for an id out of range. */
int tok_piece(const struct tok_vocab *v, int32_t id, char *buf, size_t cap, bool render_special);

/* The vocab string of id (as stored in the file), NUL-terminated; NULL if
 * out of range. */
const char *tok_text(const struct tok_vocab *v, int32_t id);

#endif
