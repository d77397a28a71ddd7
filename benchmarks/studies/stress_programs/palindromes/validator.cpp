// One line: a string of 1..100000 lowercase letters.
#include <cstdio>
int main() {
    int n = 0, c;
    while ((c = getchar()) != '\n') {
        if (c < 'a' || c > 'z' || ++n > 100000) return 1;
    }
    return n > 0 && getchar() == EOF ? 0 : 1;
}
