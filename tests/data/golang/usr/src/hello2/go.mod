module example.com/hello2

go 1.19

require github.com/pkg/errors v0.9.1

replace github.com/pkg/errors v0.9.1 => example.org/forks/errors v0.9.2-fork.1
