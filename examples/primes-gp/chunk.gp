\\ One chunk: counts the n in [FROM, TO) for which n^4 + 1 is prime (a BPSW test per
\\ number, so each chunk is a few seconds of real work). Writes the count to count.txt.
a = eval(getenv("FROM"));
b = eval(getenv("TO"));
c = 0;
for (n = a, b - 1, if (isprime(n^4 + 1), c++));
write("count.txt", c);
print("n in [", a, ", ", b, "): ", c, " primes of the form n^4+1");
quit();
