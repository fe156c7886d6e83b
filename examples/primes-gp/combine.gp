\\ The final stage: adds up the chunks' counts. Its inputs are the count.txt outputs of the
\\ chunk jobs, placed here as chunk-01/count.txt … chunk-NN/count.txt. Writes total.txt.
k = eval(getenv("CHUNKS"));
s = sum(i = 1, k, read(Strprintf("chunk-%02d/count.txt", i)));
write("total.txt", s);
print("n^4 + 1 is prime for ", s, " values of n in [1, ", eval(getenv("UPTO")), ")");
quit();
