// A text (1..100000 lowercase letters) on one line, a pattern (1..|text| letters) on the next.
#include <cstdio>
#include <cstring>
static char t[200005], p[200005];
static bool word(char* s, int most) {
    int n = 0, c;
    while ((c = getchar()) != '\n') {
        if (c < 'a' || c > 'z' || n == most) return false;
        s[n++] = c;
    }
    return n > 0;
}
int main() {
    if (!word(t, 100000) || !word(p, (int)strlen(t))) return 1;
    return getchar() == EOF ? 0 : 1;
}
