/* PLACEHOLDER: not written yet */ typedef int placeholder_gguf_writer;
