/* PLACEHOLDER: not written yet */ typedef int placeholder_cmd_eval;
