package main

import (
	"fmt"

	"github.com/pkg/errors"
)

var version = "dev"

func main() {
	err := errors.Wrap(fmt.Errorf("root cause"), "hello")
	fmt.Println(version, err)
}
