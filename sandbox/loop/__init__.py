"""The closed loop run on the emulators: Currents sample data, a Mixpanel project, the receiver.

The Currents export generator (:mod:`.currents_gen`), the Mixpanel project that rebuilds its
cohorts from the events it imported (:mod:`.mixpanel_loop`), the webhook receiver as a process
(:mod:`.webhook_receiver`) and the whole stack with ``meltano run`` (:mod:`.stack`).
"""
