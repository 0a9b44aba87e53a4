/*  test_port: loopback TCP ports for tests.

    A port found by binding to port 0 comes from the kernel's ephemeral
    range, the same range outgoing connections take their source ports from:
    between the test choosing it and ternd binding it, a ZeroMQ connect of
    another broker can take it ("Address already in use"). So tests choose
    ports below the ephemeral range, where only listeners ever go. */
#ifndef TEST_PORT_H_INCLUDED
#define TEST_PORT_H_INCLUDED

//  Returns a loopback TCP port outside the ephemeral range that nothing
//  listens on now and that this process has not returned before, or -1.
int test_port(void);

#endif
