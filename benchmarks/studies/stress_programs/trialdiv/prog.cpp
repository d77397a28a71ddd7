// Smallest prime factor of each of t numbers, by trial division.
#include <cstdio>
int main() {
    int t;
    if (scanf("%d", &t) != 1) return 0;
    long long total = 0;
    while (t--) {
        long long x, f;
        scanf("%lld", &x);
        for (f = 2; f * f <= x && x % f; f++) {}
        total += f * f <= x ? f : x;
    }
    printf("%lld\n", total);
}
