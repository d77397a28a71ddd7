// n (1 <= n <= 100000), then n integers 0 <= a_i <= 10^9 on one line.
#include <cstdio>
int main() {
    long long n, x;
    if (scanf("%lld", &n) != 1 || n < 1 || n > 100000) return 1;
    for (long long i = 0; i < n; i++)
        if (scanf("%lld", &x) != 1 || x < 0 || x > 1000000000LL) return 1;
    char c;
    return scanf(" %c", &c) == 1 ? 1 : 0;
}
