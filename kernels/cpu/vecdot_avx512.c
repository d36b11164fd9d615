/* PLACEHOLDER: not written yet */ typedef int placeholder_vecdot_avx512;
