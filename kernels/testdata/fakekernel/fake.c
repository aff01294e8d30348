/* The two symbols HasDisconnectHook looks for, with and without the call. */
__attribute__((noinline)) void queue_work_on(void) { __asm__ volatile(""); }

__attribute__((noinline, used)) static int pci_dev_set_disconnected(void *dev, void *unused)
{
#ifdef HOOK
	queue_work_on();
#endif
	__asm__ volatile("");
	return 0;
}

int main(void) { return pci_dev_set_disconnected(0, 0); }
