// t (1 <= t <= 10^4), then t lines of one integer, 2 <= x <= 10^9.
#include <cstdio>
int main() {
    long long t, x;
    if (scanf("%lld", &t) != 1 || t < 1 || t > 10000) return 1;
    while (t--)
        if (scanf("%lld", &x) != 1 || x < 2 || x > 1000000000LL) return 1;
    char c;
    return scanf(" %c", &c) == 1 ? 1 : 0;
}
