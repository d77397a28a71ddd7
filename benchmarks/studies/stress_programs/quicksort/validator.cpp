// n (2 <= n <= 200000), then n integers with |a_i| <= 10^9.
#include <cstdio>
int main() {
    long long n, x;
    if (scanf("%lld", &n) != 1 || n < 2 || n > 200000) return 1;
    for (long long i = 0; i < n; i++)
        if (scanf("%lld", &x) != 1 || x < -1000000000LL || x > 1000000000LL) return 1;
    char c;
    return scanf(" %c", &c) == 1 ? 1 : 0;
}
