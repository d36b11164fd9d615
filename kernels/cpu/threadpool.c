/* PLACEHOLDER: not written yet */ typedef int placeholder_threadpool;
