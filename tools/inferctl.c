#include <stdio.h>
int main(void) { puts("inferctl: not written yet"); return 1; }
