// Palindromic substrings, by expanding around each of the 2n-1 centres.
#include <cstdio>
#include <cstring>
static char s[100005];
int main() {
    if (scanf("%100000s", s) != 1) return 0;
    int n = strlen(s);
    long long count = 0;
    for (int c = 0; c < 2 * n - 1; c++)
        for (int l = c / 2, r = l + c % 2; l >= 0 && r < n && s[l] == s[r]; l--, r++) count++;
    printf("%lld\n", count);
}
