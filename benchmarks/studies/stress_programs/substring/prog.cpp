// Occurrences of a pattern in a text, compared character by character at every shift.
#include <cstdio>
#include <cstring>
static char t[200005], p[200005];
int main() {
    if (scanf("%200000s %200000s", t, p) != 2) return 0;
    int n = strlen(t), m = strlen(p), hits = 0;
    for (int i = 0; i + m <= n; i++) {
        int j = 0;
        while (j < m && t[i + j] == p[j]) j++;
        hits += j == m;
    }
    printf("%d\n", hits);
}
